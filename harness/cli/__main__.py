"""``python -m harness.cli`` (what ``bench run --nproc N`` hands to torchrun)."""

import sys

from harness.cli import main

sys.exit(main())

"""optbench's minimal stand-in for the ``algoperf`` package (mlcommons/algorithmic-efficiency).

Put on ``sys.path`` only while an AlgoPerf submission module is imported, and
only where no real ``algoperf`` is importable (harness/plugins/algoperf_runtime.py):
an installed ``algoperf`` is always the one used. It holds what submissions
import, ``algoperf.spec`` and ``algoperf.pytorch_utils``, written to AlgoPerf's
public API without its JAX, TensorFlow and absl dependencies.
"""

__version__ = "0.0.0+optbench-shim"
OPTBENCH_SHIM = True

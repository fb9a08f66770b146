"""Helpers shared by the hand-written optimizer submissions (not a submission itself:
the registry only reads ``submissions/optimizers/*.py``, and skips names starting with ``_``)."""

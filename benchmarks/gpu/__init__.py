"""The one-shot GPU check: ``prepare.sh`` here, ``run.sh`` on the GPU machine (see ``check.py``)."""

"""PolarMask: single-shot instance segmentation with polar representation, on mmengine."""

from . import engine  # noqa: F401  (registers the runner, hooks and the named checkpoint I/O)
from .version import __version__

__all__ = ['__version__']

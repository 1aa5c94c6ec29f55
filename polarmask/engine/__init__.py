from . import checkpoint
from .hooks import LatestCheckpointHook, PlainCheckpointHook
from .runner import PolarRunner

__all__ = ['LatestCheckpointHook', 'PlainCheckpointHook', 'PolarRunner', 'checkpoint']

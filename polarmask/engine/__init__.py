from . import checkpoint
from .hooks import LatestCheckpointHook, PlainCheckpointHook
from .loops import ResumableEpochBasedTrainLoop
from .runner import PolarRunner
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = [
    'LatestCheckpointHook',
    'PlainCheckpointHook',
    'PolarRunner',
    'ResumableEpochBasedTrainLoop',
    'SafeCheckpointHook',
    'checkpoint',
]

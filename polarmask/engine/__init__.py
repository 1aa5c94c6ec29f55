from . import checkpoint
from .hooks import LatestCheckpointHook, PlainCheckpointHook
from .loops import ResumableEpochBasedTrainLoop
from .optim_constructor import GroupedOptimWrapperConstructor, merge_param_groups
from .runner import PolarRunner
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = [
    'GroupedOptimWrapperConstructor',
    'LatestCheckpointHook',
    'PlainCheckpointHook',
    'PolarRunner',
    'ResumableEpochBasedTrainLoop',
    'SafeCheckpointHook',
    'checkpoint',
    'merge_param_groups',
]

from . import checkpoint
from .hooks import CheckInvalidLossHook, PlainCheckpointHook, SafeCheckpointHook
from .loops import ResumableEpochBasedTrainLoop
from .optim_constructor import GroupedOptimWrapperConstructor, merge_param_groups
from .runner import PolarRunner

__all__ = [
    'CheckInvalidLossHook',
    'GroupedOptimWrapperConstructor',
    'PlainCheckpointHook',
    'PolarRunner',
    'ResumableEpochBasedTrainLoop',
    'SafeCheckpointHook',
    'checkpoint',
    'merge_param_groups',
]

from .check_invalid_loss_hook import CheckInvalidLossHook
from .checkpoint_hooks import PlainCheckpointHook, SafeCheckpointHook

__all__ = ['CheckInvalidLossHook', 'PlainCheckpointHook', 'SafeCheckpointHook']

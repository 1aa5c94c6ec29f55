from .checkpoint_hooks import PlainCheckpointHook, SafeCheckpointHook

__all__ = ['PlainCheckpointHook', 'SafeCheckpointHook']

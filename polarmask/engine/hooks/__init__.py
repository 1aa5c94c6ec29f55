from .checkpoint_hooks import LatestCheckpointHook, PlainCheckpointHook

__all__ = ['LatestCheckpointHook', 'PlainCheckpointHook']

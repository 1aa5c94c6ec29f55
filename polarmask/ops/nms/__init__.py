from .nms import batched_nms, nms

__all__ = ['batched_nms', 'nms']

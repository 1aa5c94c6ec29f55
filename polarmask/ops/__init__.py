"""Compiled operators (``polarmask._C``) and their Python entry points."""

from .nms import batched_nms, nms

__all__ = ['batched_nms', 'nms']

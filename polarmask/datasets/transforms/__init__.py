from .formatting import PackPolarInputs
from .geometric import Pad, RandomFlip, RandomResize, Resize, flip_masks, resize_masks
from .loading import LoadAnnotations, LoadImageFromFile
from .polar_contours import PolarContours

__all__ = [
    'LoadAnnotations',
    'LoadImageFromFile',
    'PackPolarInputs',
    'Pad',
    'PolarContours',
    'RandomFlip',
    'RandomResize',
    'Resize',
    'flip_masks',
    'resize_masks',
]

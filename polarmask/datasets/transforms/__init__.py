from .formatting import PackPolarInputs
from .geometric import Pad, RandomFlip, RandomResize, Resize, flip_masks, resize_masks
from .loading import LoadAnnotations, LoadImageFromFile
from .pipeline_check import check_pipeline
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
    'check_pipeline',
    'flip_masks',
    'resize_masks',
]

from .original_checkpoint import (
    convert_original_checkpoint,
    convert_original_state_dict,
    legacy_rays_to_current,
)
from .polarmask import PolarMask

__all__ = [
    'PolarMask',
    'convert_original_checkpoint',
    'convert_original_state_dict',
    'legacy_rays_to_current',
]

from .original_checkpoint import (
    convert_original_checkpoint,
    convert_original_state_dict,
    legacy_rays_to_current,
)
from .polarmask import PolarMask, check_finite_losses

__all__ = [
    'PolarMask',
    'check_finite_losses',
    'convert_original_checkpoint',
    'convert_original_state_dict',
    'legacy_rays_to_current',
]

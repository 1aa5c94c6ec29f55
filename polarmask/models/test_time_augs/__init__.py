from .polar_tta import PolarTTAModel, unflip_instances

__all__ = ['PolarTTAModel', 'unflip_instances']

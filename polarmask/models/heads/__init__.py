from .polarmask_head import PolarMaskHead

__all__ = ['PolarMaskHead']

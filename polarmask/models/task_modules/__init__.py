from .polar_target import PolarTarget

__all__ = ['PolarTarget']

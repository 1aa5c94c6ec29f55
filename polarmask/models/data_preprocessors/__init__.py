from .data_preprocessor import PolarDataPreprocessor

__all__ = ['PolarDataPreprocessor']

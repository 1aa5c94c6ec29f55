from . import transforms
from .coco import CocoInsSegDataset
from .shapes import ShapesDataset
from .shapes_generator import make_shapes_dataset

__all__ = ['CocoInsSegDataset', 'ShapesDataset', 'make_shapes_dataset', 'transforms']

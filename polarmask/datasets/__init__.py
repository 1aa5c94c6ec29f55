from . import transforms
from .coco import CocoInsSegDataset
from .shapes import ShapesDataset, make_shapes_dataset

__all__ = ['CocoInsSegDataset', 'ShapesDataset', 'make_shapes_dataset', 'transforms']

from .cross_entropy_loss import CrossEntropyLoss, binary_cross_entropy
from .focal_loss import FocalLoss, sigmoid_focal_loss
from .iou_loss import IoULoss, PolarIoULoss, aligned_box_iou, iou_loss, polar_iou_loss
from .utils import weight_reduce_loss

__all__ = [
    'CrossEntropyLoss',
    'FocalLoss',
    'IoULoss',
    'PolarIoULoss',
    'aligned_box_iou',
    'binary_cross_entropy',
    'iou_loss',
    'polar_iou_loss',
    'sigmoid_focal_loss',
    'weight_reduce_loss',
]

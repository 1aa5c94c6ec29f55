"""Analysis of saved results (the ``--out`` pickle of ``tools/test.py``) without the model:
offline evaluation, per-image AP, confusion matrix and COCO error analysis."""

from .confusion_matrix import confusion_matrix, image_confusion
from .error_analysis import ErrorBreakdown, error_breakdown
from .ground_truth import CocoGroundTruth, ImageGroundTruth, config_ground_truth, mask_ious
from .image_ap import image_ap, images_ap
from .results import load_det_results, offline_evaluate

__all__ = [
    'CocoGroundTruth',
    'ErrorBreakdown',
    'ImageGroundTruth',
    'config_ground_truth',
    'confusion_matrix',
    'error_breakdown',
    'image_ap',
    'image_confusion',
    'images_ap',
    'load_det_results',
    'mask_ious',
    'offline_evaluate',
]

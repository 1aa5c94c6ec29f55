"""Analysis of saved results (the ``--out`` pickle of ``tools/test.py``) without the model:
offline evaluation."""

from .ground_truth import CocoGroundTruth, ImageGroundTruth, config_ground_truth, mask_ious
from .results import load_det_results, offline_evaluate

__all__ = [
    'CocoGroundTruth',
    'ImageGroundTruth',
    'config_ground_truth',
    'load_det_results',
    'mask_ious',
    'offline_evaluate',
]

from .functional import xyxy_to_coco_xywh
from .metrics import CocoMetric, DumpDetResults

__all__ = ['CocoMetric', 'DumpDetResults', 'xyxy_to_coco_xywh']

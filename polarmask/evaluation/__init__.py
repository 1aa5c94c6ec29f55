from .functional import encode_polygons, xyxy_to_coco_xywh
from .metrics import CocoMetric, DumpDetResults

__all__ = ['CocoMetric', 'DumpDetResults', 'encode_polygons', 'xyxy_to_coco_xywh']

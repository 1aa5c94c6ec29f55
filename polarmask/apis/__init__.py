from .det_result import DetectionResult, draw_result
from .inference import inference_detector, init_detector

__all__ = ['DetectionResult', 'draw_result', 'inference_detector', 'init_detector']

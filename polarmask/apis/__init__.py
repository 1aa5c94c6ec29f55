from .det_result import DetectionResult, draw_result
from .inference import inference_detector, init_detector
from .inferencer import PolarMaskInferencer
from .sliced import inference_sliced

__all__ = [
    'DetectionResult',
    'PolarMaskInferencer',
    'draw_result',
    'inference_detector',
    'inference_sliced',
    'init_detector',
]

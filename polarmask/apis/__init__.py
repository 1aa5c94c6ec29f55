from .inference import (
    DetectionResult,
    check_state_dict,
    draw_result,
    inference_detector,
    init_detector,
)

__all__ = [
    'DetectionResult',
    'check_state_dict',
    'draw_result',
    'inference_detector',
    'init_detector',
]

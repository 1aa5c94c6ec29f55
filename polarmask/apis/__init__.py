from .inference import (
    DetectionResult,
    check_state_dict,
    config_input_shape,
    draw_result,
    inference_detector,
    init_detector,
    load_config,
)

__all__ = [
    'DetectionResult',
    'check_state_dict',
    'config_input_shape',
    'draw_result',
    'inference_detector',
    'init_detector',
    'load_config',
]

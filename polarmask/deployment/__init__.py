"""Deployment: ONNX export of the network with the ray decoding in the graph."""

from .onnx_export import (
    OUTPUT_NAMES,
    PolarMaskONNXWrapper,
    compare_outputs,
    export_onnx,
    postprocess_outputs,
    run_onnxruntime,
)

__all__ = [
    'OUTPUT_NAMES',
    'PolarMaskONNXWrapper',
    'compare_outputs',
    'export_onnx',
    'postprocess_outputs',
    'run_onnxruntime',
]

"""ONNX export of PolarMask: the network and the ray decoding in one graph, NMS outside.

Naming convention for shapes: N images, P points of all FPN levels, C classes, R rays,
H x W the input image in pixels.

The graph takes the resized image the way the data preprocessor receives it, (N, 3, H, W)
float32 pixel values in the loaded (BGR) channel order, and does what ``PolarMask.predict`` does
up to the candidates: channel flip and normalisation of the config's data preprocessor,
zero-padding to ``pad_size_divisor`` (after normalisation, as in training), backbone, FPN and
head, then the head's own dense decoding (``PolarMaskHead.decode_by_feat``): sigmoid class
scores and centerness, boxes ``x1 = px - l, y1 = py - t, x2 = px + r, y2 = py + b`` and polygons
in the head's angle convention, both clamped to the unpadded image. Outputs are concatenated over
levels in the head's order (level by level, row-major inside a level), in input pixels:

* ``scores`` (N, P, C) class probabilities;
* ``centerness`` (N, P) polar-centerness probabilities;
* ``bboxes`` (N, P, 4) x1, y1, x2, y2;
* ``polygons`` (N, P, R, 2) vertex k on ray k, (x, y).

Not in the graph: the per-level top-k (``nms_pre``), the score threshold, the final score
``scores * (centerness + centerness_factor)``, class-wise NMS (``polarmask.ops.batched_nms``) and
rescaling to the original image; :func:`postprocess_outputs` does them with the head's own
``PolarMaskHead.postprocess``, as ``PolarMask.predict``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from mmengine.structures import InstanceData
from torch import Tensor, nn

from polarmask.models.layers import DeformConv2d
from polarmask.structures.polar import featmap_sizes_for

INPUT_NAME = 'inputs'
OUTPUT_NAMES = ('scores', 'centerness', 'bboxes', 'polygons')


class PolarMaskONNXWrapper(nn.Module):
    """PolarMask network plus decoding to dense candidates, for tracing to ONNX.

    Args:
        model: a built ``PolarMask`` (eval mode) with a ``PolarDataPreprocessor``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        preprocessor = model.data_preprocessor
        self.bgr_to_rgb = preprocessor.bgr_to_rgb
        self.normalize = preprocessor.normalize
        self.pad_size_divisor = int(preprocessor.pad_size_divisor)
        self.pad_value = float(preprocessor.pad_value)

    def preprocess(self, inputs: Tensor) -> Tensor:
        """(N, 3, H, W) BGR pixel values -> normalised, padded (N, 3, H_pad, W_pad)."""
        preprocessor = self.model.data_preprocessor
        height, width = inputs.shape[-2:]
        images = inputs.float()
        if self.bgr_to_rgb:
            images = images[:, [2, 1, 0]]
        if self.normalize:
            images = (images - preprocessor.mean) / preprocessor.std
        divisor = self.pad_size_divisor
        pad_h = (divisor - height % divisor) % divisor
        pad_w = (divisor - width % divisor) % divisor
        return F.pad(images, (0, pad_w, 0, pad_h), 'constant', self.pad_value)

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Run the network and decode every point.

        Args:
            inputs: (N, 3, H, W) float pixel values, BGR as loaded, already resized.

        Returns:
            tuple: ``scores`` (N, P, C), ``centerness`` (N, P), ``bboxes`` (N, P, 4),
            ``polygons`` (N, P, R, 2), in input pixels (see the module docstring).
        """
        height, width = inputs.shape[-2:]
        outs = self.model(self.preprocess(inputs), mode='tensor')
        return self.model.bbox_head.decode_by_feat(*outs, max_shape=(height, width))


def export_onnx(
    model: nn.Module,
    out_file: str,
    input_shape: tuple[int, int],
    batch_size: int = 1,
    opset_version: int = 17,
    dynamic_export: bool = False,
) -> PolarMaskONNXWrapper:
    """Trace ``model`` with its decoding to an ONNX file.

    Uses torch's TorchScript-based exporter (the torch.export-based one needs ``onnxscript``).
    With ``dynamic_export`` the batch size and the image height and width are free (any size,
    padded inside the graph); otherwise the graph is fixed to ``batch_size`` x ``input_shape``.
    The file's metadata ``polarmask`` holds a JSON dict of the class names, strides, rays,
    angle convention, ``centerness_factor`` and the model's ``test_cfg``.

    Args:
        model: a built ``PolarMask`` in eval mode (on the CPU).
        out_file: path of the .onnx file.
        input_shape: (H, W) of the example input used for tracing.
        batch_size: N of the example input.
        opset_version: ONNX opset.
        dynamic_export: free batch and image size.

    Returns:
        PolarMaskONNXWrapper: the traced module, the PyTorch reference of the graph.
    """
    import onnx

    deformable = [
        name for name, module in model.named_modules() if isinstance(module, DeformConv2d)
    ]
    if deformable:
        raise ValueError(
            f'export_onnx: the model has {len(deformable)} deformable convolutions (e.g. '
            f"'{deformable[0]}') and torch's ONNX exporter has no form of "
            'torchvision::deform_conv2d; export a config without dcn / use_dcn'
        )
    wrapper = PolarMaskONNXWrapper(model).eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    example = (torch.rand(batch_size, 3, *input_shape, generator=generator) * 255).to(device)
    dynamic_axes = None
    if dynamic_export:
        dynamic_axes = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'}}
        dynamic_axes.update({name: {0: 'batch', 1: 'num_points'} for name in OUTPUT_NAMES})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX export')
        warnings.filterwarnings('ignore', category=DeprecationWarning, module=r'torch\.onnx')
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper,
            (example,),
            out_file,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=opset_version,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx_model = onnx.load(out_file)
    onnx.checker.check_model(onnx_model)
    head = model.bbox_head
    info = dict(
        classes=list((getattr(model, 'dataset_meta', None) or {}).get('classes', [])),
        num_classes=head.num_classes,
        strides=list(head.strides),
        num_rays=head.num_rays,
        angle_convention=head.angle_convention,
        centerness_factor=head.centerness_factor,
        test_cfg=head.test_cfg.to_dict() if hasattr(head.test_cfg, 'to_dict') else head.test_cfg,
    )
    onnx.helper.set_model_props(onnx_model, {'polarmask': json.dumps(info)})
    onnx.save(onnx_model, out_file)
    return wrapper


def run_onnxruntime(onnx_file: str, inputs: Tensor) -> dict[str, np.ndarray]:
    """Outputs of the ONNX file on ``inputs`` (N, 3, H, W) with onnxruntime's CPU provider."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    outputs = session.run(None, {INPUT_NAME: inputs.detach().cpu().float().numpy()})
    return dict(zip(OUTPUT_NAMES, outputs, strict=True))


def compare_outputs(
    onnx_outputs: dict[str, np.ndarray],
    torch_outputs: tuple[Tensor, ...],
    rtol: float = 1e-4,
) -> dict[str, tuple[float, float]]:
    """Largest absolute difference of each output and its tolerance.

    The tolerance is ``rtol * max(1, max |reference|)``: 1e-4 for probabilities, a few
    thousandths of a pixel for coordinates of a few hundred pixels.

    Returns:
        dict: output name -> (max abs diff, tolerance).
    """
    report = {}
    for name, reference in zip(OUTPUT_NAMES, torch_outputs, strict=True):
        reference = reference.detach().cpu().numpy()
        actual = onnx_outputs[name]
        if actual.shape != reference.shape:
            raise ValueError(
                f'ONNX output {name!r} has shape {actual.shape}, PyTorch {reference.shape}'
            )
        diff = float(np.abs(actual - reference).max()) if reference.size else 0.0
        scale = float(np.abs(reference).max()) if reference.size else 0.0
        report[name] = (diff, rtol * max(1.0, scale))
    return report


def postprocess_outputs(
    bbox_head: nn.Module,
    outputs: tuple[Tensor, Tensor, Tensor, Tensor],
    input_shape: tuple[int, int],
    pad_size_divisor: int,
    img_metas: list[dict] | None = None,
    cfg: dict | None = None,
    rescale: bool = False,
) -> list[InstanceData]:
    """Detections from the exported graph's outputs, as ``PolarMask.predict`` gives them.

    The head's own ``PolarMaskHead.postprocess``: per level the ``nms_pre`` best points by max
    class probability x centerness, score threshold, score = probability x (centerness +
    ``centerness_factor``), class-wise NMS, ``max_per_img`` and, with ``rescale``, division by
    ``scale_factor``.

    Args:
        bbox_head: the model's ``PolarMaskHead`` (strides and post-processing).
        outputs: ``scores`` (N, P, C), ``centerness`` (N, P), ``bboxes`` (N, P, 4),
            ``polygons`` (N, P, R, 2) as tensors.
        input_shape: (H, W) of the graph's input batch.
        pad_size_divisor: the data preprocessor's ``pad_size_divisor``.
        img_metas: per image ``img_shape`` (H_i, W_i) when an image fills only the top-left
            part of the batch (boxes and polygons are clamped to it) and, for ``rescale``,
            ``scale_factor`` (w_scale, h_scale); defaults to ``img_shape = input_shape``.
        cfg: test config; defaults to the head's ``test_cfg``.
        rescale: return boxes and polygons in original-image pixels.

    Returns:
        list[InstanceData]: per image ``bboxes`` (n, 4), ``scores`` (n,), ``labels`` (n,),
        ``polygons`` (n, R, 2), sorted by decreasing score.
    """
    num_imgs, num_points = outputs[0].shape[:2]
    pad_shape = tuple(-(-side // pad_size_divisor) * pad_size_divisor for side in input_shape)
    level_sizes = [h * w for h, w in featmap_sizes_for(pad_shape, bbox_head.strides)]
    if sum(level_sizes) != num_points:
        raise ValueError(
            f'outputs have {num_points} points but an input of {tuple(input_shape)} padded '
            f'to multiples of {pad_size_divisor} gives {sum(level_sizes)}: pass the (H, W) of '
            f'the batch given to the graph'
        )
    img_metas = [
        dict(img_meta, img_shape=img_meta.get('img_shape', tuple(input_shape)))
        for img_meta in img_metas or [{}] * num_imgs
    ]
    return bbox_head.postprocess(outputs, level_sizes, img_metas, cfg, rescale)

"""ONNX export of PolarMask: the network and the ray decoding in one graph, NMS outside.

Naming convention for shapes: N images, P points of all FPN levels, C classes, R rays,
H x W the input image in pixels.

The graph takes the resized image the way the data preprocessor receives it, (N, 3, H, W)
float32 pixel values in the loaded (BGR) channel order, and does what ``PolarMask.predict`` does
up to the candidates: channel flip and normalisation of the config's data preprocessor,
zero-padding to ``pad_size_divisor`` (after normalisation, as in training), backbone, FPN and
head, then per level the points of :func:`~polarmask.structures.polar.level_points`, sigmoid
class scores and centerness, boxes ``x1 = px - l, y1 = py - t, x2 = px + r, y2 = py + b`` and
polygons from :func:`~polarmask.structures.polar.rays_to_polygons` in the head's angle
convention, both clamped to the unpadded image. Outputs are concatenated over levels in the
head's order (level by level, row-major inside a level), in input pixels:

* ``scores`` (N, P, C) class probabilities;
* ``centerness`` (N, P) polar-centerness probabilities;
* ``bboxes`` (N, P, 4) x1, y1, x2, y2;
* ``polygons`` (N, P, R, 2) vertex k on ray k, (x, y).

Not in the graph: the per-level top-k (``nms_pre``), the score threshold, the final score
``scores * (centerness + centerness_factor)``, class-wise NMS (``polarmask.ops.batched_nms``) and
rescaling to the original image; :func:`postprocess_outputs` does them as ``PolarMask.predict``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

from polarmask.models.heads.polarmask_head import distance_to_boxes
from polarmask.structures.polar import featmap_sizes_for, level_points, rays_to_polygons

INPUT_NAME = 'inputs'
OUTPUT_NAMES = ('scores', 'centerness', 'bboxes', 'polygons')


def _clamp_xy(points: Tensor, height: int, width: int) -> Tensor:
    """Clamp (..., 2) points (x, y) to [0, W - 1] x [0, H - 1] (traceable sizes)."""
    return torch.stack(
        (points[..., 0].clamp(0, width - 1), points[..., 1].clamp(0, height - 1)), dim=-1
    )


class PolarMaskONNXWrapper(nn.Module):
    """PolarMask network plus decoding to dense candidates, for tracing to ONNX.

    Args:
        model: a built ``PolarMask`` (eval mode) with a ``PolarDataPreprocessor``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        preprocessor = model.data_preprocessor
        self.bgr_to_rgb = bool(preprocessor._channel_conversion)
        self.normalize = bool(preprocessor._enable_normalize)
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
        head = self.model.bbox_head
        cls_scores, bbox_preds, centernesses, ray_preds = self.model(
            self.preprocess(inputs), mode='tensor'
        )
        mlvl_scores, mlvl_centerness, mlvl_bboxes, mlvl_polygons = [], [], [], []
        for cls_score, bbox_pred, centerness, ray_pred, stride in zip(
            cls_scores, bbox_preds, centernesses, ray_preds, head.strides, strict=True
        ):
            num_imgs = cls_score.shape[0]
            points = level_points(
                cls_score.shape[-2:], stride, device=bbox_pred.device, dtype=bbox_pred.dtype
            )  # (P_l, 2)
            scores = cls_score.permute(0, 2, 3, 1).reshape(num_imgs, -1, head.num_classes)
            mlvl_scores.append(scores.sigmoid())
            mlvl_centerness.append(centerness.permute(0, 2, 3, 1).reshape(num_imgs, -1).sigmoid())
            distances = bbox_pred.permute(0, 2, 3, 1).reshape(-1, 4)  # (N * P_l, 4)
            flat_points = points.expand(num_imgs, -1, -1).reshape(-1, 2)
            bboxes = distance_to_boxes(flat_points, distances).reshape(num_imgs, -1, 2, 2)
            mlvl_bboxes.append(_clamp_xy(bboxes, height, width).reshape(num_imgs, -1, 4))
            rays = ray_pred.permute(0, 2, 3, 1).reshape(num_imgs, -1, head.num_rays)
            # rays_to_polygons broadcasts (P_l, 2) points against (N, P_l, R) rays.
            mlvl_polygons.append(
                rays_to_polygons(points, rays, (height, width), head.angle_convention)
            )
        return (
            torch.cat(mlvl_scores, dim=1),
            torch.cat(mlvl_centerness, dim=1),
            torch.cat(mlvl_bboxes, dim=1),
            torch.cat(mlvl_polygons, dim=1),
        )


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

    Per level keeps the ``nms_pre`` best points by max class probability x centerness, then the
    head's own post-processing: score threshold, score = probability x (centerness +
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
    scores, centerness, bboxes, polygons = outputs
    cfg = bbox_head.test_cfg if cfg is None else ConfigDict(cfg)
    nms_pre = cfg.get('nms_pre', -1)
    pad_shape = tuple(-(-side // pad_size_divisor) * pad_size_divisor for side in input_shape)
    level_sizes = [h * w for h, w in featmap_sizes_for(pad_shape, bbox_head.strides)]
    if sum(level_sizes) != scores.shape[1]:
        raise ValueError(
            f'outputs have {scores.shape[1]} points but an input of {tuple(input_shape)} padded '
            f'to multiples of {pad_size_divisor} gives {sum(level_sizes)}: pass the (H, W) of '
            f'the batch given to the graph'
        )
    level_starts = np.cumsum([0, *level_sizes[:-1]]).tolist()
    img_metas = img_metas or [dict(img_shape=tuple(input_shape))] * scores.shape[0]
    results_list = []
    for img_id, img_meta in enumerate(img_metas):
        keep = []
        for start, size in zip(level_starts, level_sizes, strict=True):
            inds = torch.arange(start, start + size, device=scores.device)
            if 0 < nms_pre < size:
                ranking = scores[img_id, inds] * centerness[img_id, inds, None]  # (P_l, C)
                inds = inds[ranking.max(dim=1).values.topk(nms_pre).indices]
            keep.append(inds)
        keep = torch.cat(keep)
        height, width = img_meta.get('img_shape', input_shape)[:2]
        candidates = InstanceData(
            bboxes=_clamp_xy(bboxes[img_id, keep].reshape(-1, 2, 2), height, width).reshape(-1, 4),
            polygons=_clamp_xy(polygons[img_id, keep], height, width),
            scores=scores[img_id, keep],
            centerness=centerness[img_id, keep],
        )
        results_list.append(bbox_head._bbox_post_process(candidates, cfg, rescale, img_meta))
    return results_list

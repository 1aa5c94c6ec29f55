"""Non-maximum suppression: our compiled kernels with a torchvision / pure-PyTorch fallback.

Naming convention for shapes: B boxes (the candidates of one image, all classes together).

Boxes are x1y1x2y2. ``offset=0`` is torchvision's continuous convention (area ``(x2-x1)(y2-y1)``);
``offset=1`` is the original PolarMask's inclusive pixel convention (area ``(x2-x1+1)(y2-y1+1)``,
see ``docs/original_polarmask.md``). A box is suppressed when its IoU with a kept box of higher
score is strictly greater than the threshold, as in ``torchvision.ops.nms`` and the original's
CUDA kernel (its CPU kernel used >=); equal scores keep their input order (stable sort).

The kernels live in the extension ``polarmask._C`` (``polarmask/ops/nms/csrc``), which registers
``torch.ops.polarmask.nms(boxes, scores, iou_threshold, offset, categories=None)`` for CPU and,
when built with nvcc, CUDA tensors; with ``categories`` only boxes of one category suppress each
other.
"""

from __future__ import annotations

import functools
import logging

import torch
from mmengine.logging import print_log
from torch import Tensor


@functools.cache
def _extension_loaded() -> bool:
    """Imports ``polarmask._C`` once; the import registers ``torch.ops.polarmask.nms``."""
    try:
        from polarmask import _C  # noqa: F401
    except ImportError as error:
        print_log(
            f'polarmask._C is not built ({error}): NMS falls back to torchvision (offset=0) or '
            f'a slower pure-PyTorch loop (offset=1); build it with '
            f'`pip install --no-build-isolation -e .` in the polarmask checkout',
            logger='current',
            level=logging.WARNING,
        )
        return False
    _register_fake_kernel()
    return True


@functools.cache
def _register_fake_kernel() -> None:
    """Registers :func:`_nms_fake` once per process (torch < 2.14 refuses a second time)."""
    torch.library.register_fake('polarmask::nms')(_nms_fake)


# Devices our extension can have a kernel for, and their dispatch keys.
_DISPATCH_KEYS = {'cpu': 'CPU', 'cuda': 'CUDA'}


@functools.cache
def _kernel_for(device_type: str) -> bool:
    """Whether ``torch.ops.polarmask.nms`` has a kernel for tensors on ``device_type``.

    Warns once per device type when it has none.
    """
    if not _extension_loaded():
        return False
    key = _DISPATCH_KEYS.get(device_type)
    if key is not None and torch._C._dispatch_has_kernel_for_dispatch_key('polarmask::nms', key):
        return True
    hint = (
        'polarmask._C was built without its CUDA kernel; rebuild it where nvcc is found (set '
        'CUDA_HOME), or force it with `FORCE_CUDA=1 pip install --no-build-isolation -e .`'
        if device_type == 'cuda'
        else 'our kernels are for CPU and CUDA tensors'
    )
    print_log(
        f'polarmask._C has no NMS kernel for {device_type} tensors, so NMS on them falls back to '
        f'torchvision (offset=0) or a slower pure-PyTorch loop (offset=1): {hint}',
        logger='current',
        level=logging.WARNING,
    )
    return False


def _nms_fake(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    offset: int,
    categories: Tensor | None = None,
) -> Tensor:
    """Output of ``torch.ops.polarmask.nms`` for fake tensors (torch.compile, export)."""
    num_kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty(num_kept, dtype=torch.long)


def _check_inputs(boxes: Tensor, scores: Tensor, offset: int) -> None:
    if boxes.dim() != 2 or boxes.size(1) != 4:
        raise ValueError(f'nms: boxes must be (B, 4) x1y1x2y2, got shape {tuple(boxes.shape)}')
    if scores.dim() != 1 or scores.size(0) != boxes.size(0):
        raise ValueError(
            f'nms: scores must be (B,) with B = {boxes.size(0)} boxes, got shape '
            f'{tuple(scores.shape)}'
        )
    if boxes.device != scores.device:
        raise ValueError(
            f'nms: boxes are on {boxes.device} and scores on {scores.device}; move both to one '
            f'device'
        )
    if offset not in (0, 1):
        raise ValueError(
            f'nms: offset must be 0 (area (x2-x1)(y2-y1)) or 1 (area (x2-x1+1)(y2-y1+1)), '
            f'got {offset!r}'
        )


def _as_kernel_dtype(tensor: Tensor) -> Tensor:
    """Half precision (AMP) boxes and scores are cast to float32; float64 stays float64."""
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


def _nms_pytorch(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0) -> Tensor:
    """Greedy NMS in plain PyTorch, with the kernels' exact arithmetic; one step per kept box.

    Args:
        boxes: (B, 4) x1y1x2y2 float32 or float64, B > 0.
        scores: (B,) floating point.
        iou_threshold: boxes with IoU > iou_threshold against a kept box are suppressed.
        offset: 0 or 1, added to widths and heights (1 = inclusive pixel boxes).

    Returns:
        (k,) int64 indices into ``boxes`` of the kept boxes, by decreasing score.
    """
    order = scores.sort(descending=True, stable=True).indices  # (B,)
    x1, y1, x2, y2 = boxes[order].unbind(1)
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    remaining = torch.arange(order.numel(), device=boxes.device)
    kept = []
    while remaining.numel() > 0:
        i, rest = remaining[0], remaining[1:]
        kept.append(i)
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest]) + offset).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest]) + offset).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        remaining = rest[~(iou.double() > iou_threshold)]
    return order[torch.stack(kept)]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0) -> Tensor:
    """Greedy non-maximum suppression over all boxes (class-agnostic).

    Args:
        boxes: (B, 4) x1y1x2y2 boxes in pixels; float16/bfloat16 (AMP) are cast to float32.
        scores: (B,) scores, on the device of ``boxes``.
        iou_threshold: a box whose IoU with a kept box of higher score is > iou_threshold is
            suppressed (torchvision's rule).
        offset: 0 for area ``(x2-x1)(y2-y1)`` (torchvision), 1 for the original PolarMask's
            inclusive ``(x2-x1+1)(y2-y1+1)``.

    Returns:
        (k,) int64 indices into ``boxes`` of the kept boxes, sorted by decreasing score; empty
        when ``boxes`` is empty.
    """
    _check_inputs(boxes, scores, offset)
    boxes, scores = _as_kernel_dtype(boxes), _as_kernel_dtype(scores)
    if boxes.size(0) == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    if _kernel_for(boxes.device.type):
        return torch.ops.polarmask.nms(boxes, scores, float(iou_threshold), offset)
    if offset == 0:
        from torchvision.ops import nms as torchvision_nms

        return torchvision_nms(boxes, scores.to(boxes.dtype), float(iou_threshold))
    return _nms_pytorch(boxes, scores, float(iou_threshold), offset)


# Above this many boxes batched_nms runs one NMS per category rather than one call over all
# categories: O(sum_c B_c^2) beats O(B^2) once the kernel time outweighs the per-call overhead
# (mmcv's ``split_thr``). Measured with benchmarks/nms.py (80 categories).
SPLIT_THRESHOLDS = {'cpu': 4000, 'cuda': 20000}


def _check_idxs(idxs: Tensor, scores: Tensor) -> None:
    if idxs.shape != scores.shape:
        raise ValueError(
            f'batched_nms: idxs must be (B,) like scores {tuple(scores.shape)}, got '
            f'{tuple(idxs.shape)}'
        )
    if idxs.is_floating_point() or idxs.is_complex():
        raise ValueError(f'batched_nms: idxs must be integer categories, got {idxs.dtype}')
    if idxs.device != scores.device:
        raise ValueError(
            f'batched_nms: idxs are on {idxs.device} and scores on {scores.device}; move both to '
            f'one device'
        )


def _nms_per_category(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, offset: int
) -> Tensor:
    """One :func:`nms` per category, kept indices merged by decreasing score (stable)."""
    kept_mask = torch.zeros_like(scores, dtype=torch.bool)
    for category in torch.unique(idxs):
        members = torch.nonzero(idxs == category).squeeze(1)  # (B_c,)
        kept_mask[members[nms(boxes[members], scores[members], iou_threshold, offset)]] = True
    kept = torch.nonzero(kept_mask).squeeze(1)
    return kept[scores[kept].sort(descending=True, stable=True).indices]


def batched_nms(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor,
    iou_threshold: float,
    offset: int = 0,
    split_thr: int | None = None,
) -> Tensor:
    """NMS done independently per category, exactly as one :func:`nms` per category.

    Up to ``split_thr`` boxes this is one call of our kernel, which never lets boxes of
    different categories suppress each other and computes each IoU on the boxes as given, with
    the arithmetic of a per-category run. (torchvision's and mmcv's batched NMS instead shift
    each category's boxes by ``category * span``; in float32 that rounds small boxes far from
    the origin and flips IoUs near the threshold.) Above ``split_thr``, and without our
    extension, it runs one NMS per category.

    Args:
        boxes: (B, 4) x1y1x2y2 boxes in pixels; float16/bfloat16 (AMP) are cast to float32.
        scores: (B,) scores.
        idxs: (B,) integer category of each box (e.g. labels 0..C-1).
        iou_threshold: IoU above which a box of the same category is suppressed.
        offset: 0 or 1, see :func:`nms`.
        split_thr: most boxes for one kernel call; ``None`` takes ``SPLIT_THRESHOLDS`` of the
            boxes' device.

    Returns:
        (k,) int64 indices into ``boxes`` of the kept boxes, sorted by decreasing score (equal
        scores in input order).
    """
    _check_inputs(boxes, scores, offset)
    _check_idxs(idxs, scores)
    boxes, scores = _as_kernel_dtype(boxes), _as_kernel_dtype(scores)
    if boxes.size(0) == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    if split_thr is None:
        split_thr = SPLIT_THRESHOLDS.get(boxes.device.type, SPLIT_THRESHOLDS['cuda'])
    if boxes.size(0) <= split_thr and _kernel_for(boxes.device.type):
        return torch.ops.polarmask.nms(
            boxes, scores, float(iou_threshold), offset, idxs.to(torch.long)
        )
    return _nms_per_category(boxes, scores, idxs, float(iou_threshold), offset)

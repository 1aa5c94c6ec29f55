"""Tests of polarmask.ops.nms / batched_nms and of the kernels behind torch.ops.polarmask.nms.

Naming convention for shapes: B boxes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest
import torch
import torchvision
from torch import Tensor

import polarmask
from polarmask.ops import batched_nms, nms

nms_module = importlib.import_module('polarmask.ops.nms.nms')

KINDS = ('uniform', 'clustered', 'nested', 'identical', 'degenerate')
THRESHOLDS = (0.2, 0.5, 0.8)
SEEDS_PER_CASE = 15  # 5 kinds x 3 thresholds x 15 seeds = 225 cases

requires_extension = pytest.mark.skipif(
    importlib.util.find_spec('polarmask._C') is None,
    reason='polarmask._C is not built: pip install --no-build-isolation -e .',
)
requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device to run the CUDA kernel'
)


def random_case(
    kind: str, seed: int, max_boxes: int = 300, min_boxes: int = 1
) -> tuple[Tensor, Tensor]:
    """Boxes (B, 4) x1y1x2y2 float32 of one kind and distinct scores (B,)."""
    g = torch.Generator().manual_seed(seed)
    num = int(torch.randint(min_boxes, max_boxes + 1, (1,), generator=g))
    if kind == 'uniform':
        xy = torch.rand(num, 2, generator=g) * 200
        boxes = torch.cat([xy, xy + torch.rand(num, 2, generator=g) * 60], 1)
    elif kind == 'clustered':
        centers = torch.rand(max(num // 10, 1), 2, generator=g) * 200
        centers = centers[torch.randint(0, centers.size(0), (num,), generator=g)]
        centers = centers + torch.randn(num, 2, generator=g) * 4
        half = torch.rand(num, 2, generator=g) * 20 + 5
        boxes = torch.cat([centers - half, centers + half], 1)
    elif kind == 'nested':
        centers = torch.rand(max(num // 20, 1), 2, generator=g) * 200
        centers = centers[torch.randint(0, centers.size(0), (num,), generator=g)]
        half = torch.rand(num, 1, generator=g).expand(num, 2) * 40 + 1
        boxes = torch.cat([centers - half, centers + half], 1)
    elif kind == 'identical':
        distinct = torch.rand(max(num // 5, 1), 2, generator=g).mul(200).round()
        distinct = torch.cat(
            [distinct, distinct + torch.randint(1, 30, distinct.shape, generator=g)], 1
        )
        boxes = distinct[torch.randint(0, distinct.size(0), (num,), generator=g)]
    else:  # degenerate: zero width and/or height, points, and ordinary boxes among them
        xy = torch.rand(num, 2, generator=g).mul(20).round()
        wh = torch.randint(0, 12, (num, 2), generator=g).float()
        wh[torch.rand(num, generator=g) < 0.3, 0] = 0
        wh[torch.rand(num, generator=g) < 0.3, 1] = 0
        boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.randperm(num, generator=g).float() / num
    return boxes.float(), scores


def reference_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int) -> Tensor:
    """Greedy NMS over the full IoU matrix, with the kernels' float arithmetic."""
    order = scores.sort(descending=True, stable=True).indices
    x1, y1, x2, y2 = boxes[order].unbind(1)
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    w = torch.minimum(x2[:, None], x2[None]) - torch.maximum(x1[:, None], x1[None]) + offset
    h = torch.minimum(y2[:, None], y2[None]) - torch.maximum(y1[:, None], y1[None]) + offset
    inter = w.clamp(min=0) * h.clamp(min=0)
    suppresses = (inter / (areas[:, None] + areas[None] - inter)).double() > iou_threshold
    suppressed = torch.zeros(order.numel(), dtype=torch.bool)
    kept = []
    for rank in range(order.numel()):
        if not suppressed[rank]:
            kept.append(rank)
            suppressed |= suppresses[rank]
    return order[torch.tensor(kept, dtype=torch.long)]


def per_class_nms(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, offset: int
) -> Tensor:
    kept = []
    for label in idxs.unique():
        members = torch.nonzero(idxs == label).squeeze(1)
        kept.append(members[nms(boxes[members], scores[members], iou_threshold, offset)])
    kept = torch.cat(kept)
    return kept[scores[kept].sort(descending=True, stable=True).indices]


@pytest.mark.parametrize('iou_threshold', THRESHOLDS)
@pytest.mark.parametrize('kind', KINDS)
def test_nms_matches_torchvision(kind: str, iou_threshold: float) -> None:
    for seed in range(SEEDS_PER_CASE):
        boxes, scores = random_case(kind, seed)
        keep = nms(boxes, scores, iou_threshold)
        expected = torchvision.ops.nms(boxes, scores, iou_threshold)
        assert keep.dtype == torch.long
        assert torch.equal(keep, expected), f'{kind} seed {seed}: {keep} != {expected}'


@pytest.mark.parametrize('iou_threshold', THRESHOLDS)
@pytest.mark.parametrize('kind', KINDS)
def test_nms_offset1_matches_reference(kind: str, iou_threshold: float) -> None:
    for seed in range(SEEDS_PER_CASE):
        boxes, scores = random_case(kind, seed, max_boxes=150)
        keep = nms(boxes, scores, iou_threshold, offset=1)
        expected = reference_nms(boxes, scores, iou_threshold, offset=1)
        assert torch.equal(keep, expected), f'{kind} seed {seed}: {keep} != {expected}'


def test_offset_conventions_on_a_hand_computed_pair() -> None:
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 19.0]])
    scores = torch.tensor([0.9, 0.8])
    # offset=1: areas 100 and 200, intersection 100, IoU exactly 0.5 (kept: the test is IoU > thr).
    assert nms(boxes, scores, 0.5, offset=1).tolist() == [0, 1]
    assert nms(boxes, scores, 0.49, offset=1).tolist() == [0]
    # offset=0: areas 81 and 171, intersection 81, IoU 0.47.
    assert nms(boxes, scores, 0.47, offset=0).tolist() == [0]
    assert nms(boxes, scores, 0.48, offset=0).tolist() == [0, 1]


def test_equal_scores_keep_input_order() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10], [20, 20, 30, 31]])
    scores = torch.tensor([0.5, 0.7, 0.5, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [1, 0]
    assert torch.equal(nms(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))


def test_nms_many_boxes_and_float64() -> None:
    boxes, scores = random_case('clustered', seed=1, max_boxes=20000, min_boxes=10000)
    keep = nms(boxes, scores, 0.5)
    assert keep.numel() > 100
    assert torch.equal(keep, torchvision.ops.nms(boxes, scores, 0.5))
    assert torch.equal(
        nms(boxes.double(), scores.double(), 0.5),
        torchvision.ops.nms(boxes.double(), scores.double(), 0.5),
    )


def test_nms_non_contiguous_boxes() -> None:
    boxes, scores = random_case('clustered', seed=2)
    strided = boxes.t().contiguous().t()
    assert not strided.is_contiguous()
    assert torch.equal(nms(strided, scores, 0.5), nms(boxes, scores, 0.5))


@pytest.mark.parametrize('offset', [0, 1])
def test_batched_nms_matches_per_class_loop(offset: int) -> None:
    cases = [random_case('clustered', seed) for seed in range(20)]
    # One NMS per class on the CPU above SPLIT_THRESHOLDS['cpu'] = 4000 boxes.
    cases.append(random_case('clustered', seed=20, max_boxes=8000, min_boxes=4001))
    for seed, (boxes, scores) in enumerate(cases):
        # A 1/16 pixel grid: torchvision's class shift is exact in float32 on it.
        boxes = (boxes * 16).round() / 16
        g = torch.Generator().manual_seed(seed)
        idxs = torch.randint(0, 5, (boxes.size(0),), generator=g)
        keep = batched_nms(boxes, scores, idxs, 0.5, offset)
        expected = per_class_nms(boxes, scores, idxs, 0.5, offset)
        assert torch.equal(keep, expected), f'seed {seed}: {keep} != {expected}'
        if offset == 0:
            assert torch.equal(keep, torchvision.ops.batched_nms(boxes, scores, idxs, 0.5))


def small_boxes_far_from_origin(seed: int, num_clusters: int = 100, per_cluster: int = 12):
    """Clusters of 2-8 pixel boxes at x, y in [1000, 1333], one class of 80 per cluster.

    Returns boxes (B, 4) float32, scores (B,), idxs (B,) with B = num_clusters * per_cluster.
    """
    g = torch.Generator().manual_seed(seed)
    centers = 1000 + torch.rand(num_clusters, 2, generator=g) * 333
    owner = torch.arange(num_clusters).repeat_interleave(per_cluster)
    size = 2 + torch.rand(owner.numel(), 2, generator=g) * 6
    center = centers[owner] + torch.randn(owner.numel(), 2, generator=g)
    boxes = torch.cat([center - size / 2, center + size / 2], 1)
    scores = torch.rand(owner.numel(), generator=g)
    return boxes, scores, (owner * 7919 + seed) % 80


@pytest.mark.parametrize('offset', [0, 1])
def test_batched_nms_is_exactly_per_class_for_small_boxes_at_large_coordinates(offset: int) -> None:
    # Shifting classes apart by label * span in float32 (torchvision's batched NMS, and ours
    # before) rounds these boxes by ~1/128 pixel and changes the kept set in 5 of these 40 cases.
    split_thresholds = (0, 10**9) if nms_module._kernel_for('cpu') else (None,)
    for seed in range(20):
        boxes, scores, idxs = small_boxes_far_from_origin(seed)
        expected = per_class_nms(boxes, scores, idxs, 0.5, offset)
        for split_thr in split_thresholds:
            keep = batched_nms(boxes, scores, idxs, 0.5, offset, split_thr=split_thr)
            assert torch.equal(keep, expected), f'seed {seed}, split_thr {split_thr}'


def test_batched_nms_categories_beyond_int32() -> None:
    boxes, scores, idxs = small_boxes_far_from_origin(seed=0)
    expected = batched_nms(boxes, scores, idxs, 0.5)
    for wide in (idxs * 10**12, idxs - 2**40):
        assert torch.equal(batched_nms(boxes, scores, wide, 0.5), expected)


def test_batched_nms_keeps_overlapping_boxes_of_other_classes() -> None:
    boxes = torch.tensor([[-5.0, -5, 5, 5], [-5, -5, 5, 5], [-4, -5, 5, 5]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    idxs = torch.tensor([0, 1, 0])
    assert batched_nms(boxes, scores, idxs, 0.5, offset=1).tolist() == [0, 1]


def test_empty_input() -> None:
    for offset in (0, 1):
        keep = nms(torch.zeros(0, 4), torch.zeros(0), 0.5, offset)
        assert keep.shape == (0,) and keep.dtype == torch.long
        keep = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
        assert keep.shape == (0,) and keep.dtype == torch.long


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_input_is_cast_to_float32(dtype: torch.dtype) -> None:
    boxes, scores = random_case('clustered', seed=3)
    boxes, scores = boxes.to(dtype), scores.to(dtype)
    for offset in (0, 1):
        keep = nms(boxes, scores, 0.5, offset)
        assert torch.equal(keep, nms(boxes.float(), scores.float(), 0.5, offset))
        idxs = torch.arange(boxes.size(0)) % 3
        assert torch.equal(
            batched_nms(boxes, scores, idxs, 0.5, offset),
            batched_nms(boxes.float(), scores.float(), idxs, 0.5, offset),
        )


def test_bad_input_is_named() -> None:
    boxes, scores = random_case('uniform', seed=4)
    with pytest.raises(ValueError, match='boxes must be'):
        nms(boxes[:, :3], scores, 0.5)
    with pytest.raises(ValueError, match='scores must be'):
        nms(boxes, scores[:-1], 0.5)
    with pytest.raises(ValueError, match='offset must be 0'):
        nms(boxes, scores, 0.5, offset=2)
    with pytest.raises(ValueError, match='idxs must be'):
        batched_nms(boxes, scores, torch.zeros(1, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match='idxs must be integer'):
        batched_nms(boxes, scores, torch.zeros_like(scores), 0.5)


@requires_extension
def test_op_rejects_bad_input() -> None:
    boxes, scores = random_case('uniform', seed=5)
    with pytest.raises(RuntimeError, match='float32 or float64'):
        torch.ops.polarmask.nms(boxes.int(), scores, 0.5, 0)
    with pytest.raises(RuntimeError, match='offset must be 0'):
        torch.ops.polarmask.nms(boxes, scores, 0.5, 3)
    with pytest.raises(RuntimeError, match='categories must be int64'):
        torch.ops.polarmask.nms(boxes, scores, 0.5, 0, torch.zeros(boxes.size(0), dtype=torch.int))
    with pytest.raises(RuntimeError, match=r'categories must be \(B,\)'):
        torch.ops.polarmask.nms(boxes, scores, 0.5, 0, torch.zeros(1, dtype=torch.long))


@requires_extension
@pytest.mark.parametrize('offset', [0, 1])
def test_fallback_gives_the_kernel_answer(monkeypatch: pytest.MonkeyPatch, offset: int) -> None:
    cases = [random_case(kind, seed) for kind in KINDS for seed in range(4)]
    with_kernel = [nms(boxes, scores, 0.5, offset) for boxes, scores in cases]
    monkeypatch.setattr(nms_module, '_kernel_for', lambda device_type: False)
    for (boxes, scores), keep in zip(cases, with_kernel, strict=True):
        assert torch.equal(nms(boxes, scores, 0.5, offset), keep)


def test_missing_extension_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    messages = []
    monkeypatch.setattr(nms_module, 'print_log', lambda msg, **kwargs: messages.append(msg))
    monkeypatch.setitem(sys.modules, 'polarmask._C', None)
    monkeypatch.delattr(polarmask, '_C', raising=False)
    nms_module._extension_loaded.cache_clear()
    nms_module._kernel_for.cache_clear()
    try:
        boxes, scores = random_case('clustered', seed=6)
        for offset in (0, 1, 0):
            keep = nms(boxes, scores, 0.5, offset)
            assert torch.equal(keep, reference_nms(boxes, scores, 0.5, offset))
    finally:
        nms_module._extension_loaded.cache_clear()
        nms_module._kernel_for.cache_clear()
    assert len(messages) == 1
    assert 'pip install --no-build-isolation -e .' in messages[0]


@requires_extension
def test_op_supports_fake_tensors() -> None:
    boxes, scores = random_case('clustered', seed=7)
    nms(boxes, scores, 0.5)  # loads the extension and its fake kernel
    categories = torch.arange(boxes.size(0)) % 3
    for args in ((boxes, scores, 0.5, 1), (boxes, scores, 0.5, 1, categories)):
        torch.library.opcheck(
            torch.ops.polarmask.nms.default, args, test_utils=('test_schema', 'test_faketensor')
        )


@requires_extension
@requires_cuda
@pytest.mark.parametrize('offset', [0, 1])
def test_cuda_kernel_matches_cpu_kernel(offset: int) -> None:
    assert torch._C._dispatch_has_kernel_for_dispatch_key('polarmask::nms', 'CUDA')
    cases = [random_case(kind, seed) for kind in KINDS for seed in range(10)]
    cases.append(random_case('clustered', seed=8, max_boxes=20000, min_boxes=10000))
    for dtype in (torch.float32, torch.float64):
        for iou_threshold in THRESHOLDS:
            for index, (boxes, scores) in enumerate(cases):
                boxes = boxes.to(dtype)
                keep = nms(boxes.cuda(), scores.cuda(), iou_threshold, offset)
                assert keep.is_cuda
                expected = nms(boxes, scores, iou_threshold, offset)
                assert torch.equal(keep.cpu(), expected), f'case {index}, {dtype}, {iou_threshold}'


@requires_extension
@requires_cuda
def test_cuda_batched_nms_half_exact_and_empty() -> None:
    boxes, scores = random_case('clustered', seed=9)
    idxs = torch.arange(boxes.size(0)) % 4
    expected = batched_nms(boxes, scores, idxs, 0.5, offset=1)
    keep = batched_nms(boxes.cuda().half(), scores.cuda().half(), idxs.cuda(), 0.5, offset=1)
    assert torch.equal(keep.cpu(), batched_nms(boxes.half(), scores.half(), idxs, 0.5, offset=1))
    keep = batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), 0.5, offset=1)
    assert torch.equal(keep.cpu(), expected)
    for seed in range(5):
        boxes, scores, idxs = small_boxes_far_from_origin(seed)
        expected = per_class_nms(boxes, scores, idxs, 0.5, offset=1)
        keep = batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), 0.5, offset=1)
        assert torch.equal(keep.cpu(), expected), f'seed {seed}'
    empty = nms(torch.zeros(0, 4, device='cuda'), torch.zeros(0, device='cuda'), 0.5)
    assert empty.shape == (0,) and empty.is_cuda

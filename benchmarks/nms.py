"""Speed of polarmask.ops.nms / batched_nms against torchvision's, measured in the same run.

Candidates look like a detector's before NMS: B boxes scattered around B/20 objects of 16-256
pixels in a 1333x800 image, on a 1/16 pixel grid (so that torchvision's class shift of batched
NMS is exact), with distinct scores in random order and 80 classes for batched NMS. Both sides get
the same tensors; the `same` column says whether their keep indices are equal.

batched_nms is measured as it runs by default and with each of its two strategies forced: one
kernel call over all classes (`batched 1-call`) and one NMS per class (`batched split`); the
default switches from the first to the second above `SPLIT_THRESHOLDS` boxes.

    python benchmarks/nms.py                       # CPU (1 thread and default), CUDA if present
    python benchmarks/nms.py --sizes 3000 --devices cuda

The ratio column is ours / torchvision (below 1: ours is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
import torchvision

from polarmask.ops import batched_nms, nms


def make_candidates(num_boxes: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Boxes (B, 4) x1y1x2y2 float32, scores (B,), class indices (B,) of a detector-like set."""
    g = torch.Generator().manual_seed(seed)
    num_objects = max(num_boxes // 20, 1)
    centers = torch.rand(num_objects, 2, generator=g) * torch.tensor([1333.0, 800.0])
    sizes = 2 ** (torch.rand(num_objects, 2, generator=g) * 4 + 4)  # 16 .. 256 px
    owner = torch.randint(0, num_objects, (num_boxes,), generator=g)
    jitter = torch.randn(num_boxes, 4, generator=g) * 0.1
    center = centers[owner] + jitter[:, :2] * sizes[owner]
    half = sizes[owner] * (1 + jitter[:, 2:]).clamp(min=0.2) / 2
    boxes = (torch.cat([center - half, center + half], 1) * 16).round() / 16
    scores = torch.randperm(num_boxes, generator=g).float() / num_boxes
    labels = torch.randint(0, 80, (num_boxes,), generator=g)
    return boxes, scores, labels


def median_seconds(fn: Callable[[], torch.Tensor], device: str, budget_s: float = 1.0) -> float:
    """Median wall time of ``fn`` over at least 3 runs after a warm-up (at most ~budget_s)."""

    def once() -> float:
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    times = [once()]
    while len(times) < 3 or (sum(times) < budget_s and len(times) < 50):
        times.append(once())
    return statistics.median(times)


def run(sizes: list[int], setting: str, device: str, iou_threshold: float) -> list[tuple]:
    rows = []
    for num_boxes in sizes:
        boxes, scores, labels = (t.to(device) for t in make_candidates(num_boxes))
        nms_args = (boxes, scores, iou_threshold)
        batched_args = (boxes, scores, labels, iou_threshold)
        pairs = {
            'nms': (partial(nms, *nms_args), partial(torchvision.ops.nms, *nms_args)),
            'batched_nms': (
                partial(batched_nms, *batched_args),
                partial(torchvision.ops.batched_nms, *batched_args),
            ),
            'batched 1-call': (
                partial(batched_nms, *batched_args, split_thr=num_boxes),
                partial(torchvision.ops.batched_nms, *batched_args),
            ),
            'batched split': (
                partial(batched_nms, *batched_args, split_thr=0),
                partial(torchvision.ops.batched_nms, *batched_args),
            ),
        }
        for name, (ours, theirs) in pairs.items():
            keep = ours()
            same = torch.equal(keep, theirs())
            ours_s = median_seconds(ours, device)
            theirs_s = median_seconds(theirs, device)
            rows.append((setting, name, num_boxes, keep.numel(), same, ours_s, theirs_s))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[1000, 3000, 10000, 30000])
    parser.add_argument('--iou-threshold', type=float, default=0.5)
    parser.add_argument(
        '--devices',
        nargs='+',
        default=['cpu', 'cuda'],
        choices=['cpu', 'cuda'],
        help='cuda is skipped when no GPU is visible',
    )
    args = parser.parse_args()

    nms(torch.zeros(1, 4), torch.zeros(1), 0.5)  # loads the extension (or warns once)
    rows = []
    if 'cpu' in args.devices:
        default_threads = torch.get_num_threads()
        for threads in dict.fromkeys([1, default_threads]):
            torch.set_num_threads(threads)
            rows += run(args.sizes, f'cpu, {threads} thread(s)', 'cpu', args.iou_threshold)
        torch.set_num_threads(default_threads)
    if 'cuda' in args.devices and torch.cuda.is_available():
        setting = f'cuda ({torch.cuda.get_device_name()})'
        rows += run(args.sizes, setting, 'cuda', args.iou_threshold)

    print(
        f'torch {torch.__version__}, torchvision {torchvision.__version__}, '
        f'IoU threshold {args.iou_threshold}'
    )
    header = (
        f'| {"setting":<32} | {"op":<14} | {"B":>6} | {"kept":>5} | same | {"ours ms":>9} | '
        f'{"tv ms":>9} | {"ours/tv":>7} |'
    )
    print(header)
    print('|' + '|'.join('-' * (len(cell)) for cell in header.split('|')[1:-1]) + '|')
    for setting, name, num_boxes, kept, same, ours_s, theirs_s in rows:
        print(
            f'| {setting:<32} | {name:<14} | {num_boxes:>6} | {kept:>5} | '
            f'{"yes" if same else "NO":<4} | {ours_s * 1e3:>9.3f} | {theirs_s * 1e3:>9.3f} | '
            f'{ours_s / theirs_s:>7.2f} |'
        )


if __name__ == '__main__':
    main()

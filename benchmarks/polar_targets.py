"""Speed of polar target generation: vectorised ``PolarTarget`` against the per-point loop.

Run from anywhere: ``python benchmarks/polar_targets.py [--images 20] [--loop-images 6]``.

Synthetic 1280 x 768 inputs with 7 instances each of mixed size and shape (stars, ellipses,
donuts, two-part masks, thin lines, shapes cut by the border; seeded), on one CPU thread:

* ``PolarTarget.get_targets_single`` (contour extraction included) against
  ``tests/oracles/polar_target_loop.py`` (the original's per-point loop), in the same run, on the
  same images, results checked equal;
* the batched training path (contours from the pipeline, ``get_targets`` on a batch of 16) on
  the CPU, also with ``fill_missing_rays`` (exact crossings for the rays the binning misses),
  and, when CUDA is available, on the GPU (results checked equal to the CPU's).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.structures import InstanceData

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # polarmask and tests.oracles

from polarmask.models.task_modules import PolarTarget  # noqa: E402
from polarmask.structures.polar import (  # noqa: E402
    MISSING_RAY,
    featmap_sizes_for,
    mask_contour,
)
from tests.oracles.polar_target_loop import polar_targets_loop  # noqa: E402
from tests.oracles.random_instances import random_instances  # noqa: E402

PAD_SHAPE = (768, 1280)
STRIDES = (8, 16, 32, 64, 128)
RANGES = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, 1e8))
NUM_CLASSES = 80


def median_ms(fn, repeats: int, sync=lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def instances_of(masks: np.ndarray, bboxes: np.ndarray, labels: np.ndarray) -> InstanceData:
    found = [mask_contour(mask, box) for mask, box in zip(masks, bboxes, strict=True)]
    return InstanceData(
        bboxes=torch.from_numpy(bboxes),
        labels=torch.from_numpy(labels),
        contours=[torch.from_numpy(contour) for contour, _ in found],
        centers=torch.from_numpy(np.stack([center for _, center in found])),
    )


def same(ours, reference) -> bool:
    return (
        torch.equal(ours[0].cpu(), reference[0].cpu())
        and torch.equal(ours[1].cpu(), reference[1].cpu())
        and torch.allclose(ours[2].cpu(), reference[2].cpu(), atol=1e-5, rtol=0)
    )


def time_batched_targets(
    target: PolarTarget,
    batch: list[InstanceData],
    pad_shape: tuple[int, int],
    device: str,
    repeats: int,
) -> tuple[float, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The batched training path: ``get_targets`` for an input of ``pad_shape`` on ``device``.

    Args:
        target: the target generator.
        batch: per image the gt instances (contours from :func:`instances_of`), on the CPU.
        pad_shape: (H, W) of the padded network input, in pixels.
        device: where the targets are computed ('cpu', 'cuda').
        repeats: timed runs after three warm-up runs.

    Returns:
        tuple: median milliseconds per batch, and the targets (labels (N, P), box targets
        (N, P, 4), ray targets (N, P, R)) on ``device``.
    """
    sizes = featmap_sizes_for(pad_shape, target.strides)
    sync = torch.cuda.synchronize if torch.device(device).type == 'cuda' else lambda: None

    def run():
        return target.get_targets(sizes, batch, NUM_CLASSES, device)

    for _ in range(3):
        targets = run()
    return median_ms(run, repeats, sync), targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=20, help='images timed for PolarTarget')
    parser.add_argument('--loop-images', type=int, default=6, help='images timed for the loop')
    parser.add_argument('--repeats', type=int, default=5, help='runs per image (median)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    images = [random_instances(rng, PAD_SHAPE, 7, NUM_CLASSES) for _ in range(args.images)]
    target = PolarTarget(STRIDES, RANGES, center_sample_radius=1.5, num_rays=36)

    def ours(image):
        return target.get_targets_single(*image, PAD_SHAPE, NUM_CLASSES)

    def loop(image):
        return polar_targets_loop(*image, PAD_SHAPE, NUM_CLASSES)

    ours(images[0])  # warm-up
    ours_ms = [median_ms(lambda image=image: ours(image), args.repeats) for image in images]
    contour_ms = [
        median_ms(
            lambda image=image: [mask_contour(m, b) for m, b in zip(*image[:2], strict=True)], 5
        )
        for image in images
    ]
    loop_ms, equal = [], True
    for image in images[: args.loop_images]:
        start = time.perf_counter()
        reference = loop(image)
        loop_ms.append((time.perf_counter() - start) * 1e3)
        equal &= same(ours(image), reference)
    positives = statistics.mean(int((ours(image)[0] < NUM_CLASSES).sum()) for image in images)

    ours_mean = statistics.mean(ours_ms[: args.loop_images])
    loop_mean = statistics.mean(loop_ms)
    print(f'1280x768, 7 instances, {positives:.0f} positives/image, 1 CPU thread')
    print(
        f'PolarTarget.get_targets_single: {statistics.mean(ours_ms):.2f} ms/image over '
        f'{len(images)} images (contours {statistics.mean(contour_ms):.2f} ms of it)'
    )
    print(f'per-point loop (original):      {loop_mean:.1f} ms/image over {len(loop_ms)} images')
    print(
        f'speed-up on the same {len(loop_ms)} images: {loop_mean / ours_mean:.1f}x '
        f'({ours_mean:.2f} vs {loop_mean:.1f} ms); identical targets: {equal}'
    )

    batch = [instances_of(*image) for image in (images * 16)[:16]]
    cpu_ms, cpu_targets = time_batched_targets(target, batch, PAD_SHAPE, 'cpu', 5)
    print(f'batched get_targets, 16 images, CPU: {cpu_ms:.1f} ms/batch ({cpu_ms / 16:.2f}/image)')
    filling = PolarTarget(STRIDES, RANGES, center_sample_radius=1.5, fill_missing_rays=True)
    fill_ms, fill_targets = time_batched_targets(filling, batch, PAD_SHAPE, 'cpu', 5)
    missing = cpu_targets[2] == torch.tensor(MISSING_RAY)
    filled = missing & (fill_targets[2] != torch.tensor(MISSING_RAY))
    print(
        f'  with fill_missing_rays: {fill_ms:.1f} ms/batch ({fill_ms / cpu_ms:.2f}x; '
        f'{int(filled.sum())} of {int(missing.sum())} missing rays of the batch filled)'
    )
    if torch.cuda.is_available():
        gpu_ms, gpu_targets = time_batched_targets(target, batch, PAD_SHAPE, 'cuda', 20)
        print(
            f'batched get_targets, 16 images, {torch.cuda.get_device_name()}: '
            f'{gpu_ms:.2f} ms/batch; identical to the CPU: {same(gpu_targets, cpu_targets)}'
        )


if __name__ == '__main__':
    main()

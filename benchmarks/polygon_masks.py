"""Time and memory of polygons -> COCO RLE: within each box against a full-image canvas.

Run from anywhere: ``python benchmarks/polygon_masks.py [--size 8000 6000] [--detections 100]``.

Predicted 36-ray polygons of 16-1024 pixels (seeded) on an image of ``--size`` W H are encoded
as the metric, the API and ``--out`` do, by ``polarmask.structures.mask.polygons_to_rles``
(each polygon rasterised within its box clipped to the image) and by
``tests/oracles/full_canvas_masks.py`` (the earlier way: a canvas of the whole image per
detection, 32 at a time), in the same run, results checked byte-identical. Time is the median
over ``--repeats`` runs; peak memory is the maximum resident size of a forked process that
encodes once, less that of a forked process that does nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # polarmask and tests.oracles

from polarmask.structures.mask import polygons_to_rles  # noqa: E402
from tests.oracles.full_canvas_masks import full_canvas_rles  # noqa: E402

Encoder = Callable[[np.ndarray, tuple[int, int]], list[dict]]


def make_polygons(num: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """(n, 36, 2) float32 star-shaped polygons of 16-1024 px clamped to the image."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, 36, endpoint=False)[None, :, None]
    centres = rng.uniform(0, [width, height], (num, 1, 2))
    radii = 2 ** rng.uniform(3, 9, (num, 1, 1)) * rng.uniform(0.6, 1.0, (num, 36, 1))
    polygons = centres + radii * np.concatenate((np.sin(angles), np.cos(angles)), axis=2)
    return np.clip(polygons, 0, [width - 1, height - 1]).astype(np.float32)


def peak_rss_mb(work: Callable[[], object]) -> float:
    """Maximum resident size (MB) of a forked process that runs ``work`` once."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
        finally:
            os._exit(0)
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_maxrss / 1024  # kB on Linux


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, nargs=2, default=[8000, 6000], metavar=('W', 'H'))
    parser.add_argument('--detections', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args(argv)
    width, height = args.size
    shape = (height, width)
    polygons = make_polygons(args.detections, width, height)

    same = polygons_to_rles(polygons, shape) == full_canvas_rles(polygons, shape)
    idle = peak_rss_mb(lambda: None)
    rows = []
    for name, encode in (('box-wise', polygons_to_rles), ('full canvas', full_canvas_rles)):
        seconds = median_seconds(lambda encode=encode: encode(polygons, shape), args.repeats)
        memory = peak_rss_mb(lambda encode=encode: encode(polygons, shape)) - idle
        rows.append((name, seconds, memory))

    print(
        f'{args.detections} detections of 16-1024 px on {width}x{height}, '
        f'RLEs byte-identical: {"yes" if same else "NO"}'
    )
    print('| method | s per image | peak memory MB |')
    print('|---|---|---|')
    for name, seconds, memory in rows:
        print(f'| {name} | {seconds:.3f} | {memory:.0f} |')
    (_, ours_s, ours_mb), (_, full_s, full_mb) = rows
    print(f'box-wise / full canvas: time {ours_s / full_s:.3f}, memory {ours_mb / full_mb:.3f}')


if __name__ == '__main__':
    main()

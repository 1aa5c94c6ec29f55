"""CPU cost of the deformable convolutions: R-50 PolarMask forward with and without DCN.

Run from anywhere: ``python benchmarks/dcn.py [--size 320 192] [--repeats 10] [--threads 1]``.

Builds the models of ``configs/polarmask/32gpu/polar_768_1x_r50.py`` and of its DCN variant
``polar_768_1x_r50_dcn2.py`` (random weights, nothing downloaded) and times, in eval mode without
gradients, the backbone alone and the whole network (backbone, FPN and head, ``mode='tensor'``)
on one image of the given width x height: the median of ``--repeats`` runs after two warm-up
runs, both models in the same process and their runs interleaved, so that the load of a shared
machine weighs on both alike. The DCN model differs only by the 13 deformable 3x3 convs of
stages 2-4 (DCNv1) and the 12 modulated deformable tower convs of the head, so the ratio is their
cost over plain convolutions (``torchvision.ops.deform_conv2d`` on the CPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from polarmask.registry import MODELS  # noqa: E402
from polarmask.utils import register_all_modules  # noqa: E402

CONFIGS = {
    'R-50': ROOT / 'configs/polarmask/32gpu/polar_768_1x_r50.py',
    'R-50-DCN': ROOT / 'configs/polarmask/32gpu/polar_768_1x_r50_dcn2.py',
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--size', type=int, nargs=2, default=(320, 192), metavar=('W', 'H'), help='input pixels'
    )
    parser.add_argument('--repeats', type=int, default=10, help='timed runs per model and part')
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads (1: steadiest on a shared machine)'
    )
    return parser.parse_args(argv)


RunKey = tuple[str, str]  # (model, part)


def interleaved_median_ms(
    runs: dict[RunKey, Callable[[], object]], repeats: int
) -> dict[RunKey, float]:
    """Median wall time in ms of each ``run()``, the runs taking turns, after two warm-up turns."""
    times: dict[RunKey, list[float]] = {key: [] for key in runs}
    for turn in range(repeats + 2):
        for key, run in runs.items():
            start = time.perf_counter()
            run()
            if turn >= 2:
                times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) * 1e3 for key, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    register_all_modules()
    width, height = args.size
    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    runs = {}
    for name, path in CONFIGS.items():
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(str(path)).model).eval()
        runs[name, 'backbone'] = lambda model=model: model.backbone(x)
        runs[name, 'network'] = lambda model=model: model(x, mode='tensor')
    with torch.no_grad():
        ms = interleaved_median_ms(runs, args.repeats)
    print(
        f'{width}x{height}, batch 1, CPU, {torch.get_num_threads()} threads, '
        f'median of {args.repeats} runs (torch {torch.__version__})'
    )
    for name in CONFIGS:
        print(
            f'  {name:>8}: backbone {ms[name, "backbone"]:8.1f} ms, '
            f'whole network {ms[name, "network"]:8.1f} ms'
        )
    plain, dcn = CONFIGS
    ratios = [f'{part} {ms[dcn, part] / ms[plain, part]:.2f}x' for part in ('backbone', 'network')]
    print(f'  {dcn} / {plain}: ' + ', '.join(ratios))


if __name__ == '__main__':
    main()

"""Accuracy per wall time of the embedded demos, against what their rays can represent.

Run from the repository root, alone on the machine (another job makes the times meaningless):
``python benchmarks/demo_accuracy.py [--configs CFG ...] [--runs 2] [--work-dir DIR]``.

For each config (by default the demo and its small-object variant) it trains ``--runs`` times
with ``tools/train.py`` (run i with ``--seed i``; run 0 is the quickstart's own seed), each
timed from the command's start to its end (data generation on the first run, training and the
final evaluation), and reads the final segm AP, AP50 and AP75 from the run's log. Then it
computes the ceiling of the config's val split: the segm AP of the ideal ray polygons of the
ground truth (the head's R rays measured from each instance's mass centre at the ground truth's
own resolution, rasterised as the head's test config says, score 1), with
:class:`polarmask.analysis.diagnostics.SegmEvaluator`. It prints one row per config: the range
over the runs of wall time and of each AP, the ceiling and the gap between the best run and the
ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from polarmask.analysis.diagnostics import (  # noqa: E402
    SegmEvaluator,
    diagnostic_dataloader,
    ground_truth,
)
from polarmask.analysis.ground_truth import config_dataset_meta, config_ground_truth  # noqa: E402
from polarmask.registry import MODELS  # noqa: E402
from polarmask.utils import register_all_modules  # noqa: E402
from polarmask.utils.config import load_config  # noqa: E402

DEMOS = (
    'configs/polarmask/demo/polar_shapes_r18.py',
    'configs/polarmask/demo/polar_small_shapes_r18.py',
)
METRICS = ('coco/segm_mAP', 'coco/segm_mAP_50', 'coco/segm_mAP_75')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--configs', nargs='+', default=list(DEMOS), help='configs to train')
    parser.add_argument('--runs', type=int, default=2, help='trainings per config (seeds 0..)')
    parser.add_argument('--work-dir', default='work_dirs/demo_accuracy', help='runs go here')
    return parser.parse_args(argv)


def final_metrics(work_dir: Path) -> dict[str, float]:
    """The last evaluation's segm metrics in a run's ``vis_data/scalars.json``."""
    logs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not logs:
        raise FileNotFoundError(f'{work_dir}: no */vis_data/scalars.json; did the run finish?')
    evaluations = [
        record
        for record in map(json.loads, logs[-1].read_text().splitlines())
        if METRICS[0] in record
    ]
    if not evaluations:
        raise ValueError(f'{logs[-1]}: no evaluation was logged')
    return {key: float(evaluations[-1][key]) for key in METRICS}


def train(config: str, seed: int, work_dir: Path) -> tuple[float, dict[str, float]]:
    """Wall seconds of ``tools/train.py CONFIG --seed SEED`` and its final metrics."""
    command = [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir)]
    command += ['--seed', str(seed)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, final_metrics(work_dir)


def ceiling(config: str) -> dict[str, float]:
    """segm AP of the ideal ray polygons of the config's test split."""
    cfg = load_config(str(ROOT / config))
    head = MODELS.build(cfg.model).bbox_head
    evaluator = SegmEvaluator(
        config_dataset_meta(cfg)['ann_file'], config_ground_truth(cfg).cat_ids
    )
    return evaluator.ceiling_ap(ground_truth(diagnostic_dataloader(cfg, resize=False)), head)


def span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return (
        fmt.format(low)
        if fmt.format(low) == fmt.format(high)
        else f'{fmt.format(low)}-{fmt.format(high)}'
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    register_all_modules()
    os.chdir(ROOT)
    print(
        f'{os.cpu_count()} CPUs, torch threads as tools/train.py sets them; {args.runs} runs each'
    )
    rows = []
    for config in args.configs:
        name = Path(config).stem
        times, metrics = [], []
        for seed in range(args.runs):
            seconds, result = train(config, seed, Path(args.work_dir) / f'{name}_seed{seed}')
            times.append(seconds)
            metrics.append(result)
            print(
                f'{name} seed {seed}: {seconds:.0f} s, '
                + ', '.join(f'{key.split("/")[1]} {value:.3f}' for key, value in result.items())
            )
        best = max(m[METRICS[0]] for m in metrics)
        ideal = ceiling(config)
        rows.append(
            [
                name,
                span([t / 60 for t in times], '{:.1f}') + ' min',
                *(span([m[key] for m in metrics], '{:.3f}') for key in METRICS),
                f'{ideal["AP"]:.3f} / {ideal["AP50"]:.3f} / {ideal["AP75"]:.3f}',
                f'{ideal["AP"] - best:.3f}',
            ]
        )
    header = ['config', 'wall time', 'segm AP', 'AP50', 'AP75', 'ceiling AP / AP50 / AP75', 'gap']
    print('\n| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows:
        print('| ' + ' | '.join(row) + ' |')
    return 0


if __name__ == '__main__':
    sys.exit(main())

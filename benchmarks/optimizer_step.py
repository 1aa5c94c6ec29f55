"""Speed of an optimizer step: ``GroupedOptimWrapperConstructor`` against mmengine's constructor.

Run from anywhere: ``python benchmarks/optimizer_step.py [--config CONFIG] [--steps 200]``.

Builds the config's model and its ``optim_wrapper`` twice, once with mmengine's
``DefaultOptimWrapperConstructor`` (one parameter group per parameter when ``paramwise_cfg`` is
set) and once with ours (one group per distinct option set), gives every parameter the same
random gradient and times ``OptimWrapper.step`` (gradient clipping + optimizer step, as in
training). Both wrappers start from the same weights; after the timed steps the weights are
checked equal, so the ratio compares the same update.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from polarmask.registry import MODELS  # noqa: E402
from polarmask.utils import register_all_modules  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--config', default=str(ROOT / 'configs/polarmask/demo/polar_shapes_r18.py')
    )
    parser.add_argument('--steps', type=int, default=200, help='timed steps per constructor')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: all)')
    return parser.parse_args(argv)


def time_steps(model: torch.nn.Module, optim_wrapper_cfg: dict, steps: int) -> tuple[float, int]:
    """Median ms of ``steps`` wrapper steps, and the number of parameter groups."""
    wrapper = build_optim_wrapper(model, optim_wrapper_cfg)
    generator = torch.Generator().manual_seed(0)
    for param in model.parameters():
        param.grad = torch.randn(param.shape, generator=generator) * 1e-3
    for _ in range(5):
        wrapper.step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        wrapper.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, len(wrapper.optimizer.param_groups)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    models = {'mmengine': model, 'grouped': copy.deepcopy(model)}
    constructors = {
        'mmengine': 'DefaultOptimWrapperConstructor',
        'grouped': 'GroupedOptimWrapperConstructor',
    }
    results = {}
    for name, constructor in constructors.items():
        wrapper_cfg = dict(copy.deepcopy(cfg.optim_wrapper), constructor=constructor)
        results[name] = time_steps(models[name], wrapper_cfg, args.steps)
    for expected, actual in zip(
        models['mmengine'].state_dict().values(),
        models['grouped'].state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(actual, expected)

    optimizer = cfg.optim_wrapper.optimizer
    print(f'{Path(args.config).name}: {optimizer.type}, {torch.get_num_threads()} threads')
    for name, (ms, groups) in results.items():
        print(f'  {name:>8}: {groups:3d} parameter groups, {ms:6.2f} ms per step (clip + update)')
    ratio = results['mmengine'][0] / results['grouped'][0]
    print(f'  grouped is {ratio:.1f}x faster; weights after {args.steps + 5} steps equal')


if __name__ == '__main__':
    main()

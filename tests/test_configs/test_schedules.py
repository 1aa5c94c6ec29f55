"""The seed configs' schedules, stepped the way mmengine's ParamSchedulerHook steps them."""

from pathlib import Path

import mmengine.optim  # noqa: F401  (registers the schedulers)
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS

CONFIG_ROOT = Path(__file__).resolve().parents[2] / 'configs' / 'polarmask'
ITERS_PER_EPOCH = 1000


def _lr_trace(config: str, num_epochs: int) -> dict[tuple[int, int], float]:
    """lr used at (epoch, iteration-in-epoch) for the config's optimizer and schedulers."""
    cfg = Config.fromfile(str(CONFIG_ROOT / config))
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = [
        PARAM_SCHEDULERS.build(dict(scheduler), default_args=dict(optimizer=optimizer))
        for scheduler in cfg.param_scheduler
    ]
    trace = {}
    for epoch in range(num_epochs):
        for index in range(ITERS_PER_EPOCH):
            trace[(epoch, index)] = optimizer.param_groups[0]['lr']
            optimizer.step()
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()
        for scheduler in schedulers:
            if scheduler.by_epoch:
                scheduler.step()
    return trace


def _at_iteration(trace, iteration):
    return trace[divmod(iteration, ITERS_PER_EPOCH)]


@pytest.mark.parametrize('backbone', ['r50', 'r101', 'x101'])
def test_4gpu_schedule(backbone):
    trace = _lr_trace(f'4gpu/polar_768_1x_{backbone}.py', 12)
    lr = 0.01
    assert _at_iteration(trace, 0) == pytest.approx(lr / 3)
    assert _at_iteration(trace, 250) == pytest.approx(lr / 3 + (lr - lr / 3) * 0.5)
    assert _at_iteration(trace, 500) == pytest.approx(lr)
    assert _at_iteration(trace, 2000) == pytest.approx(lr)
    assert trace[(7, ITERS_PER_EPOCH - 1)] == pytest.approx(lr)
    assert trace[(8, 0)] == pytest.approx(lr * 0.1)
    assert trace[(10, ITERS_PER_EPOCH - 1)] == pytest.approx(lr * 0.1)
    assert trace[(11, 0)] == pytest.approx(lr * 0.01)


@pytest.mark.parametrize(('backbone', 'lr'), [('r50', 0.08), ('r101', 0.08), ('x101', 0.04)])
def test_32gpu_schedule(backbone, lr):
    trace = _lr_trace(f'32gpu/polar_768_1x_{backbone}.py', 14)
    start = 0.01 / 3
    assert _at_iteration(trace, 0) == pytest.approx(start)
    assert _at_iteration(trace, 250) == pytest.approx(start + (lr - start) * 250 / 2000)
    assert _at_iteration(trace, 500) == pytest.approx(start + (lr - start) * 500 / 2000)
    assert _at_iteration(trace, 2000) == pytest.approx(lr)
    assert trace[(9, ITERS_PER_EPOCH - 1)] == pytest.approx(lr)
    assert trace[(10, 0)] == pytest.approx(lr * 0.1)
    assert trace[(13, 0)] == pytest.approx(lr * 0.01)

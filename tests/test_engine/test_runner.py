"""PolarRunner builds exactly the hooks and the train loop that the config names."""

import uuid
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from polarmask.engine import (
    PlainCheckpointHook,
    PolarRunner,
    ResumableEpochBasedTrainLoop,
    SafeCheckpointHook,
)
from polarmask.engine.runner import end_process_group
from polarmask.utils import register_all_modules

CONFIG_BASE = Path(__file__).resolve().parents[2] / 'configs' / '_base_'


class ToyModel(BaseModel):
    """One linear layer; ``loss`` mode sums its output (batches of ``dict(inputs=...)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return {'loss': self.linear(inputs).sum()} if mode == 'loss' else self.linear(inputs)


def _runner(work_dir: Path, default_hooks: dict, custom_hooks: list, train_cfg: dict):
    register_all_modules()
    return PolarRunner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=f'test_runner_{uuid.uuid4().hex}',
        train_dataloader=DataLoader(torch.zeros(2, 1), batch_size=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=train_cfg,
        default_hooks=default_hooks,
        custom_hooks=custom_hooks,
        default_scope='polarmask',
    )


@pytest.mark.parametrize(
    'train_cfg', [dict(type='EpochBasedTrainLoop', max_epochs=1), dict(by_epoch=True, max_epochs=1)]
)
def test_mmengine_hook_and_loop_named_are_built_unchanged(tmp_path, train_cfg):
    runner = _runner(
        tmp_path, dict(checkpoint=dict(type='CheckpointHook', interval=1)), [], train_cfg
    )
    assert [type(hook) for hook in runner.hooks if isinstance(hook, CheckpointHook)] == [
        CheckpointHook
    ]
    assert not [hook for hook in runner.hooks if type(hook).__module__.startswith('polarmask')]
    assert type(runner.train_loop) is EpochBasedTrainLoop


def test_base_configs_name_polarmask_hooks_and_loop(tmp_path):
    runtime = Config.fromfile(str(CONFIG_BASE / 'default_runtime.py'))
    schedule = Config.fromfile(str(CONFIG_BASE / 'schedules' / 'schedule_1x_4gpu.py'))
    runner = _runner(tmp_path, runtime.default_hooks, runtime.custom_hooks, schedule.train_cfg)
    hook_types = [type(hook) for hook in runner.hooks]
    assert SafeCheckpointHook in hook_types and PlainCheckpointHook in hook_types
    assert CheckpointHook not in hook_types
    assert type(runner.train_loop) is ResumableEpochBasedTrainLoop


def test_load_checkpoint_names_the_file_and_the_fix(tmp_path):
    runner = _runner(tmp_path, {}, [], dict(type='EpochBasedTrainLoop', max_epochs=1))
    with pytest.raises(FileNotFoundError, match=r"missing\.pth' does not exist: check the path"):
        runner.load_checkpoint(str(tmp_path / 'missing.pth'))
    pickled = tmp_path / 'pickled.pth'
    torch.save({'state_dict': runner.model.state_dict(), 'meta': {'hub': object()}}, pickled)
    with pytest.raises(RuntimeError, match=r"pickled\.pth' contains pickled Python objects"):
        runner.load_checkpoint(str(pickled))


def test_end_process_group_destroys_the_default_group(tmp_path):
    end_process_group()  # outside a distributed run: nothing to do
    torch.distributed.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1
    )
    try:
        assert torch.distributed.is_initialized()
        end_process_group()
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

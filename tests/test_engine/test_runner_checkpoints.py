"""PolarRunner checks a checkpoint before loading it, and finds and prunes its checkpoints.

- testing and resuming need weights that fit the model exactly; ``load_from`` of a training run
  may bring a classifier for another number of classes (fine-tuning), nothing else;
- a resumed optimizer state must fit the optimizer of the config;
- ``last_checkpoint`` is relative to the work dir, a moved work dir resumes from its own files;
- a checkpoint due for deletion when a run was killed is deleted when it resumes.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from polarmask.engine import PolarRunner
from polarmask.engine.hooks import checkpoint_hooks
from polarmask.registry import MODELS
from polarmask.utils import register_all_modules
from tests.test_engine.test_runner import ToyModel
from tests.tiny_model import tiny_model_cfg


class _Data(list):
    """A list of samples with the ``metainfo`` of a dataset."""

    def __init__(self, classes: tuple[str, ...] = (), length: int = 3) -> None:
        super().__init__([dict(inputs=torch.ones(1))] * length)
        self.metainfo = dict(classes=classes)


def _runner(work_dir: Path, model, **kwargs) -> PolarRunner:
    register_all_modules()
    return PolarRunner(
        model=model,
        work_dir=str(work_dir),
        experiment_name=f'test_runner_checkpoints_{uuid.uuid4().hex}',
        default_scope='polarmask',
        **kwargs,
    )


def _training(work_dir: Path, model, **kwargs) -> PolarRunner:
    """A runner with its train loop and optimizer built, as ``train()`` has them when it loads."""
    runner = _runner(
        work_dir,
        model,
        train_dataloader=DataLoader(_Data(('a', 'b', 'c')), batch_size=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        **kwargs,
    )
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    return runner


def _save(path: Path, model: torch.nn.Module, **entries) -> Path:
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1, iter=3), **entries), path)
    return path


def _tiny(**head) -> torch.nn.Module:
    register_all_modules()
    cfg = tiny_model_cfg()
    cfg['bbox_head'].update(head)
    return MODELS.build(cfg)


def test_testing_refuses_weights_of_another_model(tmp_path):
    checkpoint = _save(tmp_path / 'five.pth', _tiny(num_classes=5))
    runner = _runner(tmp_path / 'work', tiny_model_cfg(), load_from=str(checkpoint))
    with pytest.raises(ValueError, match=r"'.*five\.pth' was trained for 5 classes .* for 3"):
        runner.load_or_resume()

    other = _tiny(stacked_convs=1).state_dict()
    torch.save(dict(state_dict=other), tmp_path / 'other.pth')
    runner = _runner(tmp_path / 'work', tiny_model_cfg(), load_from=str(tmp_path / 'other.pth'))
    with pytest.raises(ValueError, match=r"'.*other\.pth' does not fit the model of config"):
        runner.load_or_resume()


def test_fine_tuning_keeps_an_initialised_classifier_for_other_classes(tmp_path, monkeypatch):
    trained = _tiny(num_classes=5)
    checkpoint = _save(tmp_path / 'five.pth', trained)
    runner = _training(tmp_path / 'work', tiny_model_cfg(), load_from=str(checkpoint))
    initial = runner.model.bbox_head.polar_cls.weight.detach().clone()
    warnings: list[str] = []
    monkeypatch.setattr(runner.logger, 'warning', warnings.append)
    runner.load_or_resume()

    assert len(warnings) == 1
    assert 'bbox_head.polar_cls.weight (5, 8, 3, 3)' in warnings[0]
    assert 'keeps its initialisation (fine-tuning)' in warnings[0]
    assert torch.equal(runner.model.bbox_head.polar_cls.weight, initial)
    for name, value in trained.state_dict().items():
        if not name.startswith('bbox_head.polar_cls.'):
            assert torch.equal(runner.model.state_dict()[name], value), name

    other = _save(tmp_path / 'rays.pth', _tiny(num_classes=5, num_rays=18))
    runner = _training(tmp_path / 'work', tiny_model_cfg(), load_from=str(other))
    with pytest.raises(ValueError, match=r"'.*rays\.pth' was trained for 18 rays"):
        runner.load_or_resume()


def test_resume_refuses_an_optimizer_state_of_other_parameters(tmp_path):
    model = _tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for param in model.parameters():
        param.grad = torch.ones_like(param)
    optimizer.step()
    state = optimizer.state_dict()
    # The moments of the first two parameters swapped: what a model with other frozen layers or
    # another parameter order leaves; torch accepts it and fails (or worse) in the next step.
    state['state'][0], state['state'][1] = state['state'][1], state['state'][0]
    checkpoint = _save(tmp_path / 'swapped.pth', model, optimizer=state)
    runner = _training(tmp_path / 'work', tiny_model_cfg())
    with pytest.raises(ValueError) as error:
        runner.resume(str(checkpoint))
    message = str(error.value)
    assert f"'{checkpoint}': its optimizer state does not fit the parameters" in message
    assert "backbone.conv1.weight (4, 3, 7, 7) (state 'momentum_buffer': (4,))" in message
    assert 'load_from=<checkpoint> and no --resume' in message
    assert runner.train_loop.iter == 0

    weights_only = tmp_path / 'weights.pth'
    torch.save(dict(state_dict=model.state_dict()), weights_only)
    with pytest.raises(ValueError, match=r"'.*weights\.pth' holds weights but no training state"):
        _training(tmp_path / 'work', tiny_model_cfg()).resume(str(weights_only))


def test_resume_refuses_weights_of_another_model(tmp_path):
    checkpoint = _save(tmp_path / 'other.pth', _tiny(stacked_convs=1))
    runner = _training(tmp_path / 'work', tiny_model_cfg(), resume=True, load_from=str(checkpoint))
    with pytest.raises(ValueError, match=r"'.*other\.pth' does not fit the model of config"):
        runner.load_or_resume()
    assert runner.train_loop.epoch == 0


def _toy(work_dir: Path, max_keep_ckpts: int = 1, **kwargs) -> PolarRunner:
    """A runner of the toy model: 1 epoch of 3 iterations with a checkpoint after each."""
    return _runner(
        work_dir,
        ToyModel(),
        train_dataloader=DataLoader(_Data(), batch_size=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(type='ResumableEpochBasedTrainLoop', max_epochs=1),
        default_hooks=dict(
            checkpoint=dict(
                type='SafeCheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=max_keep_ckpts
            )
        ),
        custom_hooks=[dict(type='PlainCheckpointHook')],
        **kwargs,
    )


def _train_toy(work_dir: Path, max_keep_ckpts: int = 1, **kwargs) -> PolarRunner:
    runner = _toy(work_dir, max_keep_ckpts, **kwargs)
    runner.train()
    runner._work_dir_lock.close()  # as when its process ends
    return runner


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob('iter_*.pth'))


def test_last_checkpoint_is_relative_and_a_moved_work_dir_resumes_from_its_own(tmp_path):
    first = tmp_path / 'first'
    _train_toy(first, max_keep_ckpts=3)
    assert (first / 'last_checkpoint').read_text() == 'iter_3.pth'

    moved = tmp_path / 'moved'
    shutil.move(first, moved)
    (moved / 'iter_3.pth').unlink()
    (moved / 'last_checkpoint').write_text(str(first / 'iter_2.pth'))  # an older, absolute one
    runner = _train_toy(moved, max_keep_ckpts=3, resume=True)
    assert runner.train_loop.iter == 3
    assert _names(moved) == ['iter_1.pth', 'iter_2.pth', 'iter_3.pth']


def test_resume_without_a_checkpoint_says_so(tmp_path, monkeypatch):
    runner = _runner(tmp_path / 'empty', ToyModel(), resume=True)
    warnings: list[str] = []
    monkeypatch.setattr(runner.logger, 'warning', warnings.append)
    runner.load_or_resume()
    assert len(warnings) == 1 and 'has no last_checkpoint' in warnings[0]
    assert 'training starts from scratch' in warnings[0]

    (tmp_path / 'gone').mkdir()
    (tmp_path / 'gone' / 'last_checkpoint').write_text('iter_9.pth')
    runner = _runner(tmp_path / 'gone', ToyModel(), resume=True)
    with pytest.raises(FileNotFoundError, match=r"last_checkpoint' names the checkpoint 'iter_9"):
        runner.load_or_resume()


def test_checkpoint_due_for_deletion_at_a_kill_is_deleted_on_resume(tmp_path, monkeypatch):
    work = tmp_path / 'work'
    point_latest = checkpoint_hooks.point_latest

    def killed_after_saving(work_dir: str, target: str) -> None:
        point_latest(work_dir, target)
        if target.endswith('iter_2.pth'):
            raise KeyboardInterrupt  # the kill: iter_2 complete, iter_1 not yet deleted

    monkeypatch.setattr(checkpoint_hooks, 'point_latest', killed_after_saving)
    killed = _toy(work)
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    killed._work_dir_lock.close()
    assert _names(work) == ['iter_1.pth', 'iter_2.pth']
    monkeypatch.undo()

    _train_toy(work, resume=True)
    assert _names(work) == ['iter_3.pth']


def test_data_with_more_classes_than_the_head_stops_before_training(tmp_path):
    runner = _runner(
        tmp_path,
        tiny_model_cfg(),
        train_dataloader=DataLoader(_Data(('a', 'b', 'c', 'd')), batch_size=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
    )
    with pytest.raises(ValueError, match=r'train_dataloader.dataset of config .* has 4 classes'):
        runner.build_train_loop(runner._train_loop)


def test_data_with_fewer_classes_than_the_head_is_warned(tmp_path, monkeypatch):
    runner = _runner(
        tmp_path,
        tiny_model_cfg(),
        train_dataloader=DataLoader(_Data(('a', 'b')), batch_size=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
    )
    warnings: list[str] = []
    monkeypatch.setattr(runner.logger, 'warning', warnings.append)
    runner.build_train_loop(runner._train_loop)
    assert len(warnings) == 1 and 'labels 2..2 have no training data' in warnings[0]


def test_a_second_training_in_a_work_dir_in_use_is_refused(tmp_path, monkeypatch):
    first = _toy(tmp_path)
    first.train()
    with pytest.raises(RuntimeError, match=r"'.*' is in use by another training \(pid \d+ on "):
        _toy(tmp_path).train()
    first._work_dir_lock.close()

    again = _toy(tmp_path)
    warnings: list[str] = []
    monkeypatch.setattr(again.logger, 'warning', warnings.append)
    again.train()
    assert any('holds the checkpoints of an earlier run' in warning for warning in warnings)

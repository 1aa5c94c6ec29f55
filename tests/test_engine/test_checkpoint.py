"""Checkpoint I/O: plain runner state, the weights-only loader and the atomic backend, selected by
name without changing mmengine's defaults."""

import os

import numpy as np
import pytest
import torch
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import CheckpointLoader
from mmengine.runner.checkpoint import load_from_local

from polarmask.engine import SafeCheckpointHook
from polarmask.engine.checkpoint import (
    ATOMIC_BACKEND,
    AtomicLocalBackend,
    make_checkpoint_plain,
    restore_checkpoint_objects,
    weights_only_uri,
)
from polarmask.utils import register_all_modules


def _runner_like_checkpoint() -> dict:
    hub = MessageHub.get_instance('test_checkpoint_hub')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('iter', np.int64(12))
    meta = dict(epoch=1, iter=12, seed=np.int64(3))
    return dict(meta=meta, state_dict={'w': torch.ones(2)}, message_hub=hub.state_dict())


def test_importing_polarmask_keeps_mmengine_defaults(tmp_path):
    register_all_modules()
    assert CheckpointLoader._get_checkpoint_loader(str(tmp_path / 'a.pth')) is load_from_local
    backend = get_file_backend(str(tmp_path / 'a.pth'))
    assert type(backend) is LocalBackend


def test_plain_checkpoint_round_trip(tmp_path):
    checkpoint = _runner_like_checkpoint()
    path = tmp_path / 'epoch_1.pth'
    torch.save(checkpoint, path)
    with pytest.raises(RuntimeError, match=r"'.*epoch_1\.pth' contains pickled Python objects"):
        CheckpointLoader.load_checkpoint(weights_only_uri(path))

    checkpoint = _runner_like_checkpoint()
    make_checkpoint_plain(checkpoint)
    torch.save(checkpoint, path)
    loaded = CheckpointLoader.load_checkpoint(weights_only_uri(path), map_location='cpu')
    restore_checkpoint_objects(loaded)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(1.0)
    assert loaded['meta']['seed'] == 3
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))


def test_missing_checkpoint_names_file_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth' does not exist: check the path"):
        CheckpointLoader.load_checkpoint(weights_only_uri(tmp_path / 'nothing.pth'))


def test_weights_only_uri_leaves_urls_alone():
    assert weights_only_uri('a/b.pth') == 'weights_only://a/b.pth'
    assert weights_only_uri('open-mmlab://resnet50_caffe') == 'open-mmlab://resnet50_caffe'


@pytest.mark.parametrize(
    ('options', 'atomic'),
    [
        ({}, True),
        ({'out_dir': '/some/folder'}, True),
        ({'out_dir': 's3://bucket/folder'}, False),
        ({'backend_args': {'backend': 'local'}}, False),
    ],
)
def test_safe_checkpoint_hook_selects_the_atomic_backend_for_local_folders(options, atomic):
    hook = SafeCheckpointHook(interval=1, **options)
    assert (hook.backend_args == {'backend': ATOMIC_BACKEND}) is atomic
    if atomic:
        assert type(get_file_backend('/x', backend_args=hook.backend_args)) is AtomicLocalBackend


def test_atomic_put_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / 'epoch_1.pth'
    target.write_bytes(b'old')
    backend = AtomicLocalBackend()

    def fail(*args):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', fail)
    with pytest.raises(OSError):
        backend.put(b'new', target)
    assert target.read_bytes() == b'old'
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth']
    monkeypatch.undo()
    backend.put(b'new', target)
    assert target.read_bytes() == b'new'


def test_truncated_or_foreign_files_name_the_checkpoint(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, good)
    (tmp_path / 'truncated.pth').write_bytes(good.read_bytes()[:1000])
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'notes.pth').write_text('not a checkpoint\n')
    for name in ('truncated.pth', 'empty.pth', 'notes.pth'):
        with pytest.raises(RuntimeError, match=rf"'.*{name}' \(\d+ bytes\) is not a checkpoint"):
            CheckpointLoader.load_checkpoint(weights_only_uri(tmp_path / name))

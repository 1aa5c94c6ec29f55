"""Runner checkpoints load with ``weights_only=True``; writes are atomic; errors name the file."""

import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import CheckpointLoader

from polarmask.engine.checkpoint import (
    AtomicLocalBackend,
    load_local_checkpoint,
    make_checkpoint_plain,
    restore_checkpoint_objects,
)


def _runner_like_checkpoint() -> dict:
    hub = MessageHub.get_instance('test_checkpoint_hub')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('iter', np.int64(12))
    meta = dict(epoch=1, iter=12, seed=np.int64(3))
    return dict(meta=meta, state_dict={'w': torch.ones(2)}, message_hub=hub.state_dict())


def test_plain_checkpoint_round_trip(tmp_path):
    checkpoint = _runner_like_checkpoint()
    path = tmp_path / 'epoch_1.pth'
    torch.save(checkpoint, path)
    with pytest.raises(RuntimeError, match='epoch_1.pth'):
        load_local_checkpoint(str(path))

    checkpoint = _runner_like_checkpoint()
    make_checkpoint_plain(checkpoint)
    torch.save(checkpoint, path)
    loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    restore_checkpoint_objects(loaded)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(1.0)
    assert loaded['meta']['seed'] == 3
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'nothing.pth'))


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

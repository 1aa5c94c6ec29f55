"""Checkpoint I/O that works with ``torch.load(weights_only=True)`` (torch >= 2.6).

mmengine's runner pickles its ``MessageHub`` (``HistoryBuffer`` objects holding numpy arrays and
bound methods) into every checkpoint, which ``weights_only=True`` refuses. Instead of loading
everything with ``weights_only=False``, the checkpoints our runner writes are made of plain
types only (:class:`PlainCheckpointHook` converts the message hub on save and back on load), and
every local file — our checkpoints, pretrained backbones, converted original weights — is loaded
with ``weights_only=True``.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

_BUFFER_TAG = '__history_buffer__'


def _to_plain(value: Any) -> Any:
    """Recursively replace HistoryBuffers and numpy values with lists/floats."""
    if isinstance(value, HistoryBuffer):
        log_history, count_history = value.data
        return {
            _BUFFER_TAG: True,
            'log_history': log_history.tolist(),
            'count_history': count_history.tolist(),
            'max_length': value.max_length,
        }
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_plain(item) for item in value)
    return value


def _from_plain(value: Any) -> Any:
    """Inverse of :func:`_to_plain` for the HistoryBuffers."""
    if isinstance(value, dict):
        if value.get(_BUFFER_TAG):
            return HistoryBuffer(value['log_history'], value['count_history'], value['max_length'])
        return {key: _from_plain(item) for key, item in value.items()}
    return value


_RUNNER_STATE_KEYS = ('meta', 'message_hub', 'param_schedulers')


def make_checkpoint_plain(checkpoint: dict) -> None:
    """Convert the runner state of a checkpoint in place to types ``weights_only=True`` accepts.

    mmengine stores ``meta``, ``message_hub`` (HistoryBuffers of numpy arrays) and
    ``param_schedulers`` next to the weights.
    """
    for key in _RUNNER_STATE_KEYS:
        if key in checkpoint:
            checkpoint[key] = _to_plain(checkpoint[key])


def restore_checkpoint_objects(checkpoint: dict) -> None:
    """Rebuild the message hub's HistoryBuffers of a plain checkpoint in place."""
    if isinstance(checkpoint.get('message_hub'), dict):
        checkpoint['message_hub'] = _from_plain(checkpoint['message_hub'])


def load_local_checkpoint(filename: str, map_location: str | None = None) -> Any:
    """Load a local checkpoint with ``weights_only=True``.

    Raises:
        FileNotFoundError: naming the file when it does not exist.
        RuntimeError: naming the file and the fix when it holds arbitrary pickled objects.
    """
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint {filename!r} does not exist: check the path given to --resume, '
            f'load_from or init_cfg.checkpoint'
        )
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        raise RuntimeError(
            f'checkpoint {filename!r} contains pickled Python objects {unsafe} that '
            f'torch.load(weights_only=True) refuses to execute. Checkpoints written by '
            f'polarmask and plain state dicts load directly; for a file you trust from another '
            f'tool, re-save only its weights: '
            f"torch.save({{'state_dict': torch.load(path, weights_only=False)['state_dict']}}, "
            f'new_path)'
        ) from error


class AtomicLocalBackend(LocalBackend):
    """Local file backend whose ``put`` never leaves a half-written file.

    The bytes go to a temporary file in the same folder, which then replaces the target with
    ``os.replace``; a crash during saving leaves the previous file intact.
    """

    def put(self, obj: bytes, filepath: str | os.PathLike) -> None:
        filepath = os.fspath(filepath)
        folder = os.path.dirname(os.path.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, f'.{os.path.basename(filepath)}.tmp-{os.getpid()}')
        try:
            with open(temporary, 'wb') as file:
                file.write(obj)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, filepath)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)


def register_checkpoint_io() -> None:
    """Install the local loader scheme and the atomic local backend (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')


register_checkpoint_io()

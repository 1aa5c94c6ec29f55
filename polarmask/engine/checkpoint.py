"""Checkpoint I/O: plain-typed runner state, a weights-only loader, an atomic file backend.

torch >= 2.6 loads with ``weights_only=True``, which refuses mmengine's ``MessageHub``
(``HistoryBuffer`` objects holding numpy arrays) that the runner pickles into every checkpoint.
:class:`~polarmask.engine.hooks.PlainCheckpointHook` stores that state as plain types with
:func:`make_checkpoint_plain` and rebuilds it with :func:`restore_checkpoint_objects`.

Nothing here changes mmengine's defaults on import. Two additions are registered under names
of their own and selected where they are used:

- :data:`WEIGHTS_ONLY_PREFIX`, a ``CheckpointLoader`` scheme: ``weights_only://PATH`` reads the
  local file PATH with :func:`load_local_checkpoint` (``PolarRunner.load_checkpoint`` and
  ``init_detector`` prefix local paths with it, see :func:`weights_only_uri`);
- :data:`ATOMIC_BACKEND`, a file backend (:class:`AtomicLocalBackend`) that
  ``SafeCheckpointHook`` selects through ``backend_args`` for local folders.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from typing import Any

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

ATOMIC_BACKEND = 'polarmask_atomic_local'
WEIGHTS_ONLY_PREFIX = 'weights_only://'
_BUFFER_TAG = '__history_buffer__'
_RUNNER_STATE_KEYS = ('meta', 'message_hub', 'param_schedulers')


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


def _unsafe_globals(filename: str) -> list[str]:
    """The pickled Python objects of a zip-format checkpoint (empty when there are none or the
    file is no zip archive)."""
    if not zipfile.is_zipfile(filename):
        return []
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except (RuntimeError, ValueError, KeyError, EOFError):
        return []


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint with ``torch.load(weights_only=True)``.

    Args:
        filename: path of the file (``~`` is expanded).
        map_location: as for ``torch.load``.

    Returns:
        The loaded object (a state dict, or a dict holding one).

    Raises:
        FileNotFoundError: naming the file when it does not exist.
        RuntimeError: naming the file and the fix when it holds arbitrary pickled objects, is
            truncated or is not a file ``torch.save`` wrote.
    """
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint {filename!r} does not exist: check the path given to --resume, '
            f'load_from or init_cfg.checkpoint'
        )
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, RuntimeError) as error:
        unsafe = _unsafe_globals(filename) if isinstance(error, pickle.UnpicklingError) else []
        if unsafe:
            raise RuntimeError(
                f'checkpoint {filename!r} contains pickled Python objects {unsafe} that '
                f'torch.load(weights_only=True) refuses to execute. Checkpoints written by '
                f'polarmask and plain state dicts load directly; for a file you trust from '
                f'another tool, re-save only its weights: '
                f"torch.save({{'state_dict': torch.load(path, weights_only=False)"
                f"['state_dict']}}, new_path)"
            ) from error
        reason = (str(error).strip().splitlines() or [''])[0].split('. ')[0][:160]
        raise RuntimeError(
            f'checkpoint {filename!r} ({os.path.getsize(filename)} bytes) is not a checkpoint '
            f'torch can read: it is truncated or damaged, or no file torch.save wrote '
            f'({type(error).__name__}: {reason}). Copy it again, or pass a .pth written by '
            'tools/train.py'
        ) from error


def weights_only_uri(path: str | os.PathLike) -> str:
    """``path`` with the :data:`WEIGHTS_ONLY_PREFIX` scheme when it is a local file path.

    ``CheckpointLoader.load_checkpoint`` reads the result with :func:`load_local_checkpoint`;
    URLs and model-zoo names (anything with ``://``) are returned unchanged.
    """
    path = os.fspath(path)
    return path if '://' in path else WEIGHTS_ONLY_PREFIX + path


def load_from_weights_only(filename: str, map_location: Any = None) -> Any:
    """``CheckpointLoader`` scheme :data:`WEIGHTS_ONLY_PREFIX`: :func:`load_local_checkpoint`."""
    return load_local_checkpoint(filename[len(WEIGHTS_ONLY_PREFIX) :], map_location)


class AtomicLocalBackend(LocalBackend):
    """Local file backend whose ``put`` never leaves a half-written file.

    The bytes go to a temporary file ``.<name>.tmp-<pid>`` in the same folder, which then
    replaces the target with ``os.replace``; a crash during saving leaves the previous file
    intact.
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


def checkpoint_bytes(checkpoint: Any) -> bytes:
    """The bytes ``torch.save`` writes for ``checkpoint``."""
    with io.BytesIO() as buffer:
        torch.save(checkpoint, buffer)
        return buffer.getvalue()


def save_checkpoint_atomically(checkpoint: Any, filepath: str | os.PathLike) -> None:
    """``torch.save`` to a local file through :class:`AtomicLocalBackend` (folders created)."""
    AtomicLocalBackend().put(checkpoint_bytes(checkpoint), filepath)


def point_latest(work_dir: str, target: str) -> None:
    """Atomically make ``<work_dir>/latest.pth`` a relative symlink to ``target``.

    The original's commands (``tools/dist_test.sh ... work_dirs/<name>/latest.pth``) rely on
    it; mmengine itself records the last checkpoint in ``<work_dir>/last_checkpoint``.
    """
    latest = os.path.join(work_dir, 'latest.pth')
    if os.path.realpath(latest) == os.path.realpath(target):
        return
    temporary = os.path.join(work_dir, f'.latest.pth.tmp-{os.getpid()}')
    if os.path.lexists(temporary):
        os.remove(temporary)
    os.symlink(os.path.relpath(target, work_dir), temporary)
    os.replace(temporary, latest)


CheckpointLoader.register_scheme(prefixes=WEIGHTS_ONLY_PREFIX, loader=load_from_weights_only)
register_backend(ATOMIC_BACKEND, AtomicLocalBackend)

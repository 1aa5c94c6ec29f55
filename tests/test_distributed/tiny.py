"""Tiny real runs of the demo config for the distributed and fault tests.

Every run uses the demo config (``configs/polarmask/demo/polar_shapes_r18.py``) unchanged except
for ``--cfg-options`` that point it at a small generated dataset of 64x64 images, shrink the
input size and the loaders, and checkpoint every second iteration. 12 training images at 2
images per process and 2 processes give 3 iterations per epoch; 2 epochs give 6 iterations, and
the checkpoints of iterations 2 and 4 fall in the middle of an epoch.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from polarmask.datasets.shapes_generator import make_shapes_dataset

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'configs/polarmask/demo/polar_shapes_r18.py'
IMAGE_SIZE = 64
NUM_TRAIN = 12
NUM_VAL = 5
MAX_EPOCHS = 2


def make_tiny_data(root: Path) -> Path:
    """Generate the tiny shapes dataset (large objects so that a probe model scores AP > 0)."""
    make_shapes_dataset(
        root,
        num_train=NUM_TRAIN,
        num_val=NUM_VAL,
        image_size=(IMAGE_SIZE, IMAGE_SIZE),
        object_size=(0.5, 0.7),
        num_objects=(1, 2),
    )
    return root


def data_options(data_root: Path) -> list[str]:
    """``--cfg-options`` values that point every split at ``data_root`` with tiny loaders."""
    root = f'{data_root}/'
    ann_val = f'{root}annotations/instances_val.json'
    scale = f'({IMAGE_SIZE},{IMAGE_SIZE})'
    options = [
        f'train_dataloader.dataset.data_root={root}',
        f'train_dataloader.dataset.pipeline.2.scale={scale}',
        'train_dataloader.batch_size=2',
    ]
    for split, resize_index in (('val', 1), ('test', 1)):
        options += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.dataset.pipeline.{resize_index}.scale={scale}',
            f'{split}_evaluator.ann_file={ann_val}',
        ]
    for split in ('train', 'val', 'test'):
        options += [
            f'{split}_dataloader.num_workers=0',
            f'{split}_dataloader.persistent_workers=False',
        ]
    return options


def train_options(data_root: Path, extra: Sequence[str] = ()) -> list[str]:
    """``tools/train.py`` arguments after the config: tiny data, checkpoints every 2 iterations."""
    return [
        '--no-validate',
        '--cfg-options',
        *data_options(data_root),
        f'train_cfg.max_epochs={MAX_EPOCHS}',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.by_epoch=False',
        'default_hooks.checkpoint.interval=2',
        *extra,
    ]


def environment(**overrides: str) -> dict[str, str]:
    """The test process's environment with the venv first on PATH and one thread per process.

    torchrun gives each of several processes ``OMP_NUM_THREADS=1``; single-process runs get the
    same so that their floating-point results are comparable bit for bit.
    """
    env = dict(os.environ)
    env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env.get("PATH", "")}'
    env['PYTHONPATH'] = f'{ROOT}{os.pathsep}{env.get("PYTHONPATH", "")}'
    env['OMP_NUM_THREADS'] = '1'
    env['PYTHONUNBUFFERED'] = '1'
    env.update(overrides)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start(command: Sequence[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``command`` in the repository root in its own process group, output to ``log``."""
    with open(log, 'wb') as out:
        return subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish(process: subprocess.Popen, log: Path, timeout: float) -> int:
    """Wait for ``process``; kill its whole group if it runs past ``timeout`` seconds."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f'{process.args} ran past {timeout} s:\n{tail(log)}') from None


def run(command: Sequence[str], log: Path, env: dict[str, str], timeout: float = 120) -> float:
    """Run ``command`` to completion, assert it succeeded; returns its wall time in seconds."""
    begin = time.monotonic()
    code = finish(start(command, log, env), log, timeout)
    assert code == 0, f'{command} exited with {code}:\n{tail(log)}'
    return time.monotonic() - begin


def tail(log: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file."""
    return '\n'.join(log.read_text(errors='replace').splitlines()[-lines:])


def train_workers(parent: int) -> list[int]:
    """Pids of the ``tools/train.py`` processes below process ``parent``, by rank order."""
    children: dict[int, list[int]] = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / 'stat').read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(')', 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [parent]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            try:
                cmdline = (Path('/proc') / str(child) / 'cmdline').read_bytes()
            except OSError:
                continue
            if b'tools/train.py' in cmdline and b'torch.distributed.run' not in cmdline:
                found.append(child)
            todo.append(child)
    return sorted(found)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(interval)


def last_checkpoint(work_dir: Path) -> Path:
    """The checkpoint ``<work_dir>/last_checkpoint`` names (relative to the work dir)."""
    return work_dir / (work_dir / 'last_checkpoint').read_text().strip()


def load(path: Path) -> dict:
    """A checkpoint, loaded the way the runner loads it (``weights_only=True``)."""
    return torch.load(path, map_location='cpu', weights_only=True)

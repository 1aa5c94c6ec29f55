"""Hooks that keep checkpoints loadable with ``weights_only=True`` and ``latest.pth`` current."""

from __future__ import annotations

import os

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from polarmask.engine.checkpoint import make_checkpoint_plain, restore_checkpoint_objects
from polarmask.registry import HOOKS


def point_latest(work_dir: str, target: str) -> None:
    """Atomically make ``<work_dir>/latest.pth`` a relative symlink to ``target``."""
    latest = os.path.join(work_dir, 'latest.pth')
    if os.path.realpath(latest) == os.path.realpath(target):
        return
    temporary = os.path.join(work_dir, f'.latest.pth.tmp-{os.getpid()}')
    if os.path.lexists(temporary):
        os.remove(temporary)
    os.symlink(os.path.relpath(target, work_dir), temporary)
    os.replace(temporary, latest)


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Store the runner's meta as plain types on save and rebuild it on load."""

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        make_checkpoint_plain(checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        restore_checkpoint_objects(checkpoint)


@HOOKS.register_module()
class LatestCheckpointHook(Hook):
    """Point ``<work_dir>/latest.pth`` at the last checkpoint written.

    The original's commands (``tools/dist_test.sh ... work_dirs/.../latest.pth``) rely on it;
    mmengine itself records the last checkpoint in ``<work_dir>/last_checkpoint``. Runs after
    a checkpoint hook of another type than ``SafeCheckpointHook`` (which points ``latest.pth``
    itself when it saves); ``PolarRunner`` registers it only then.
    """

    priority = 'LOWEST'

    def _update(self, runner) -> None:
        if not is_main_process():
            return
        pointer = os.path.join(runner.work_dir, 'last_checkpoint')
        if not os.path.isfile(pointer):
            return
        with open(pointer) as file:
            target = file.read().strip()
        if target and os.path.isfile(target):
            point_latest(runner.work_dir, target)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._update(runner)

    def after_train_epoch(self, runner) -> None:
        self._update(runner)

    def after_train(self, runner) -> None:
        self._update(runner)

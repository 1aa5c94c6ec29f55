"""Hooks that keep checkpoints loadable with ``weights_only=True`` and ``latest.pth`` current."""

from __future__ import annotations

import os

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from polarmask.engine.checkpoint import make_checkpoint_plain, restore_checkpoint_objects
from polarmask.registry import HOOKS


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
    mmengine's ``CheckpointHook`` and swaps the link atomically.
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
        if not target or not os.path.isfile(target):
            return
        latest = os.path.join(runner.work_dir, 'latest.pth')
        if os.path.realpath(latest) == os.path.realpath(target):
            return
        temporary = f'{latest}.tmp-{os.getpid()}'
        if os.path.lexists(temporary):
            os.remove(temporary)
        os.symlink(os.path.relpath(target, runner.work_dir), temporary)
        os.replace(temporary, latest)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._update(runner)

    def after_train_epoch(self, runner) -> None:
        self._update(runner)

    def after_train(self, runner) -> None:
        self._update(runner)

"""Checkpoint hooks: crash-safe saving, exact resumption, ``weights_only=True`` loading.

The configs name both (``configs/_base_/default_runtime.py``):

- :class:`SafeCheckpointHook` as ``default_hooks.checkpoint``, mmengine's ``CheckpointHook``
  made crash-safe and a source of exact resumption;
- :class:`PlainCheckpointHook` in ``custom_hooks``, which keeps the runner state of every
  checkpoint in plain types.
"""

from __future__ import annotations

import os
import re
from typing import Any

from mmengine.dist import all_gather_object, get_dist_info, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from polarmask.engine.checkpoint import (
    ATOMIC_BACKEND,
    AtomicLocalBackend,
    make_checkpoint_plain,
    point_latest,
    restore_checkpoint_objects,
)
from polarmask.engine.loops import ResumableEpochBasedTrainLoop, get_rng_state
from polarmask.registry import HOOKS

_TEMPORARY = re.compile(r'^\..+\.tmp-\d+$')


def _is_local(path: object) -> bool:
    return path is None or '://' not in str(path)


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Store the runner state as plain types on save and rebuild it on load.

    Checkpoints saved with this hook load with ``torch.load(weights_only=True)``
    (:func:`~polarmask.engine.checkpoint.make_checkpoint_plain`).
    """

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        make_checkpoint_plain(checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        restore_checkpoint_objects(checkpoint)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints survive a kill at any moment and resume exactly.

    Takes ``mmengine.hooks.CheckpointHook``'s arguments. Differences:

    - checkpoints in a local folder are written through the
      :data:`~polarmask.engine.checkpoint.ATOMIC_BACKEND` file backend (temporary file +
      rename) unless ``backend_args`` or ``file_client_args`` choose another;
    - ``last_checkpoint`` is replaced atomically and ``<work_dir>/latest.pth`` re-pointed
      *before* outdated checkpoints are removed (mmengine removes the oldest one first and
      rewrites ``last_checkpoint`` in place), so a kill at any moment leaves
      ``last_checkpoint`` and ``latest.pth`` naming a complete checkpoint; a checkpoint due
      for removal when the kill came is removed when the run resumes;
    - ``last_checkpoint`` holds the path relative to the work dir (``PolarRunner`` reads it so),
      so a copied or moved work dir resumes from its own checkpoints;
    - temporary files left by a killed run are removed when training starts;
    - every checkpoint holds each rank's random generator states, which
      :class:`~polarmask.engine.loops.ResumableEpochBasedTrainLoop` restores on resume.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if (
            kwargs.get('backend_args') is None
            and kwargs.get('file_client_args') is None
            and _is_local(kwargs.get('out_dir'))
        ):
            kwargs['backend_args'] = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, **kwargs)
        self._rng_states: list[dict] | None = None

    def before_train(self, runner) -> None:
        is_local = _is_local(self.out_dir)
        super().before_train(runner)
        if is_main_process() and is_local and os.path.isdir(self.out_dir):
            for name in sorted(os.listdir(self.out_dir)):
                if _TEMPORARY.match(name):
                    os.remove(os.path.join(self.out_dir, name))
                    print_log(
                        f'removed {name!r}, a partial file left in {self.out_dir!r} by a run '
                        'killed while saving',
                        logger='current',
                    )

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._rng_states is not None:
            checkpoint['meta']['rng_states'] = self._rng_states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        loop = getattr(runner, '_train_loop', None)
        states = checkpoint.get('meta', {}).get('rng_states')
        if not isinstance(loop, ResumableEpochBasedTrainLoop):
            return
        rank, world_size = get_dist_info()
        if states is not None and len(states) == world_size:
            loop.resumed_rng_state = states[rank]
            return
        print_log(
            'the checkpoint holds no random generator states for '
            f'{world_size} process(es) (it has {0 if states is None else len(states)}): '
            'a resumed run draws other random augmentations than an uninterrupted one',
            logger='current',
        )

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        # Collective: every rank reaches this for every checkpoint (the conditions are global).
        self._rng_states = all_gather_object(get_rng_state())
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids[0])
            # The new checkpoint lists the outdated one until it is deleted: resumed after a
            # kill before the deletion, mmengine's before_train deletes it.
            runner.message_hub.update_info('keep_ckpt_ids', [*self.keep_ckpt_ids, step])
            self.keep_ckpt_ids.append(step)

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        try:
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args,
            )
        finally:
            self._rng_states = None
        if self.max_keep_ckpts > 0:
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        if not is_main_process():
            return

        recorded = str(self.last_ckpt)
        if _is_local(recorded):
            recorded = os.path.relpath(recorded, runner.work_dir)
        pointer = os.path.join(runner.work_dir, 'last_checkpoint')
        AtomicLocalBackend().put(recorded.encode(), pointer)
        if os.path.isfile(self.last_ckpt):
            point_latest(runner.work_dir, self.last_ckpt)
        for old_step in outdated:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old_step))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)

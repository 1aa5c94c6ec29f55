"""An epoch-based training loop that resumes mid-epoch exactly where the interrupted run was.

mmengine's ``EpochBasedTrainLoop`` restarts a resumed epoch at its first batch, so resuming from
an iteration checkpoint (``default_hooks.checkpoint.by_epoch=False``) trains the batches seen
before the crash twice and ends with different weights. :class:`ResumableEpochBasedTrainLoop`
instead replays the batches of the epoch that were already trained (loading them without training,
as mmengine's ``IterBasedTrainLoop`` does) and then restores the random number generators to
their state at the checkpoint, so the next batch is the one the interrupted run would have drawn,
with the same random augmentation.

Exactness (same final weights as an uninterrupted run, on the same world size and machine): the
sampler order is always reproduced; the random augmentation is reproduced when the pipeline runs
in the main process (``num_workers=0``, whose generators the checkpoint holds) or in workers
recreated every epoch (``persistent_workers=False``, reseeded from the config seed and replayed).
Persistent workers carry their generator state across epochs and die with the crashed run, so
after resuming their augmentation draws differ from the uninterrupted run's.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from polarmask.registry import LOOPS


def get_rng_state() -> dict[str, Any]:
    """The state of Python's, numpy's and torch's global generators, as plain types.

    Returns:
        dict: ``python`` (``random.getstate()``), ``numpy`` (``np.random.get_state()`` with the key
        as a list), ``torch`` (CPU generator state, uint8 tensor) and, once CUDA is initialised,
        ``cuda`` (the current device's generator state). Loadable with ``weights_only=True``.
    """
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=(name, key.tolist(), int(pos), int(has_gauss), float(cached_gaussian)),
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators from :func:`get_rng_state`'s output."""
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    name, key, pos, has_gauss, cached_gaussian = state['numpy']
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached_gaussian))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that continues a resumed epoch at the batch after the checkpoint.

    Takes ``EpochBasedTrainLoop``'s arguments; ``PolarRunner`` builds it wherever a config asks
    for ``EpochBasedTrainLoop``. ``SafeCheckpointHook`` stores every rank's generator states in
    each checkpoint and hands this rank's to :attr:`resumed_rng_state` when one is loaded.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resumed_rng_state: dict[str, Any] | None = None

    def run_epoch(self) -> None:
        """Iterate one epoch, skipping the batches a resumed checkpoint has already trained."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        trained = self._iter - self._epoch * len(self.dataloader)
        batches = iter(self.dataloader)
        if trained > 0:
            print_log(
                f'Resuming epoch {self._epoch + 1} after its batch {trained}: replaying '
                f'{trained} batches of data without training on them',
                logger='current',
            )
            for _ in range(trained):
                next(batches)
        if self.resumed_rng_state is not None and self._iter > 0:
            set_rng_state(self.resumed_rng_state)
        self.resumed_rng_state = None
        for idx, data_batch in enumerate(batches, start=trained):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

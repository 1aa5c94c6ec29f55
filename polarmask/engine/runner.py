"""mmengine's Runner where mmengine needs CUDA, plus messages that name the fix on resume.

mmengine 0.10.7's launchers call ``torch.cuda.set_device`` unconditionally and its runner passes
``device_ids=[LOCAL_RANK]`` to DistributedDataParallel; both fail without a GPU. On such a machine
:class:`PolarRunner` initialises torch.distributed with the ``gloo`` backend through mmengine's own
launchers (pytorch, slurm, mpi), gives each process its share of CPU threads and wraps the model
in DDP without device ids. With CUDA present, all of this is mmengine's unchanged behaviour.

On every machine it reads local checkpoints through the weights-only loader and, when resuming
fails, names the checkpoint and the fix (missing file, pickled objects, other optimizer groups).
It builds exactly the hooks and train loop the config names (``configs/_base_/`` names
polarmask's ``SafeCheckpointHook``, ``PlainCheckpointHook`` and ``ResumableEpochBasedTrainLoop``).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator

import torch
from mmengine.dist import master_only
from mmengine.model import MMDistributedDataParallel
from mmengine.runner import Runner

from polarmask.engine.checkpoint import weights_only_uri
from polarmask.registry import MODEL_WRAPPERS, RUNNERS


@contextlib.contextmanager
def _tolerate_cuda_set_device() -> Iterator[None]:
    """Make ``torch.cuda.set_device`` a no-op while no GPU is visible."""
    if torch.cuda.is_available():
        yield
        return
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def _limit_cpu_threads() -> None:
    """Give each CPU process of a distributed run its share of threads, not every core.

    torchrun exports ``OMP_NUM_THREADS=1`` before starting its processes; ``srun`` does not, and
    mmengine exports it only after torch has sized its thread pool, so every task would use all
    cores and the tasks would slow each other down many times over. Uses ``OMP_NUM_THREADS``,
    else the CPUs Slurm gave the task (``--cpus-per-task``), else 1, as torchrun does, and exports
    the choice (also as ``MKL_NUM_THREADS`` unless set) before mmengine exports its default of 1.
    """
    threads = os.environ.get('OMP_NUM_THREADS') or os.environ.get('SLURM_CPUS_PER_TASK') or '1'
    os.environ['OMP_NUM_THREADS'] = threads
    os.environ.setdefault('MKL_NUM_THREADS', threads)
    torch.set_num_threads(int(threads))


@RUNNERS.register_module()
class PolarRunner(Runner):
    """mmengine's Runner with CPU/gloo distributed support and resume errors naming the fix."""

    def setup_env(self, env_cfg: dict) -> None:
        env_cfg = copy.deepcopy(dict(env_cfg))
        if self.distributed and not torch.cuda.is_available():
            dist_cfg = dict(env_cfg.get('dist_cfg', {}))
            dist_cfg['backend'] = 'gloo'
            env_cfg['dist_cfg'] = dist_cfg
            _limit_cpu_threads()
        with _tolerate_cuda_set_device():
            super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: dict | None, model: torch.nn.Module):
        if not self.distributed or torch.cuda.is_available():
            return super().wrap_model(model_wrapper_cfg, model)
        wrapper_cfg = dict(model_wrapper_cfg or {})
        wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
        wrapper_type = MODEL_WRAPPERS.get(wrapper_cfg['type'])
        if wrapper_type is None or not issubclass(wrapper_type, MMDistributedDataParallel):
            return super().wrap_model(model_wrapper_cfg, model)
        wrapper_cfg.setdefault('broadcast_buffers', False)
        wrapper_cfg.setdefault(
            'find_unused_parameters', self.cfg.get('find_unused_parameters', False)
        )
        return MODEL_WRAPPERS.build(wrapper_cfg, default_args=dict(module=model))

    @master_only
    def dump_config(self) -> None:
        """Save the config: a training run into the work dir (as mmengine), any other run into
        its own ``<work_dir>/<timestamp>/`` beside its log.

        ``tools/test.py`` drops the training parts of the config; dumped into the work dir, that
        copy would replace the one training saved there (same file name).
        """
        if self._train_loop is not None:
            super().dump_config()
            return
        name = os.path.basename(self.cfg.filename) if self.cfg.filename else 'config.py'
        self.cfg.dump(os.path.join(self.log_dir, name))

    def resume(
        self,
        filename: str,
        resume_optimizer: bool = True,
        resume_param_scheduler: bool = True,
        map_location: str = 'default',
    ) -> None:
        """mmengine's resume, with a fix named when the optimizer groups do not match."""
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        except ValueError as error:
            if 'different number of parameter groups' not in str(error):
                raise
            optimizer = getattr(self.optim_wrapper, 'optimizer', None)
            groups = f' ({len(optimizer.param_groups)})' if optimizer is not None else ''
            raise ValueError(
                f"'{filename}': the checkpoint's optimizer state has another number of parameter "
                f'groups than the optimizer of this config{groups}: it was written with '
                'another optim_wrapper.constructor or paramwise_cfg (checkpoints from before '
                'GroupedOptimWrapperConstructor have one group per parameter). Resume with the '
                'settings it was trained with (e.g. --cfg-options '
                'optim_wrapper.constructor=DefaultOptimWrapperConstructor), or start from its '
                'weights without the optimizer state: --cfg-options load_from=<checkpoint> and '
                'no --resume'
            ) from error

    def load_checkpoint(
        self,
        filename: str,
        map_location: str | Callable = 'cpu',
        strict: bool = False,
        revise_keys: list | None = None,
    ) -> dict:
        """mmengine's load_checkpoint (also used by resume) with the weights-only loader.

        Local files are read through the ``weights_only://`` scheme
        (:func:`~polarmask.engine.checkpoint.load_local_checkpoint`), whose errors name the file
        and the fix when it is missing or holds pickled objects; URLs keep mmengine's loaders.
        """
        revise_keys = [(r'^module.', '')] if revise_keys is None else revise_keys
        return super().load_checkpoint(
            weights_only_uri(filename), map_location, strict, revise_keys
        )

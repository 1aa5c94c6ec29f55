"""mmengine's Runner where mmengine needs CUDA, with checkpoints and data checked before use.

mmengine 0.10.7's launchers call ``torch.cuda.set_device`` unconditionally and its runner passes
``device_ids=[LOCAL_RANK]`` to DistributedDataParallel; both fail without a GPU. On such a machine
:class:`PolarRunner` initialises torch.distributed with the ``gloo`` backend through mmengine's own
launchers (pytorch, slurm, mpi), gives each process its share of CPU threads and wraps the model
in DDP without device ids. With CUDA present, all of this is mmengine's unchanged behaviour.
Processes started by torchrun (``launcher='pytorch'``) stop when torchrun dies, even by SIGKILL.

On every machine it reads local checkpoints through the weights-only loader and checks them
before anything is loaded: the weights must fit the model (testing, resuming; ``load_from`` of a
training run may bring a classifier for another number of classes, re-initialised), a resumed
optimizer state must fit the optimizer; errors name the checkpoint and the fix. It resumes from
``last_checkpoint`` relative to the work dir and checks the data's classes against the head.
It builds exactly the hooks and train loop the config names (``configs/_base_/`` names
polarmask's ``SafeCheckpointHook``, ``PlainCheckpointHook`` and ``ResumableEpochBasedTrainLoop``).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator

import torch
from mmengine.dist import is_main_process, master_only
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, MMDistributedDataParallel, is_model_wrapper
from mmengine.runner import BaseLoop, Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from torch import nn

from polarmask.engine.checkpoint import weights_only_uri
from polarmask.engine.state_dict import (
    MODULE_PREFIX,
    check_optimizer_state,
    check_state_dict,
    checkpoint_weights,
    keep_own_classifier,
)
from polarmask.registry import MODEL_WRAPPERS, RUNNERS
from polarmask.utils.config import config_name

try:
    import fcntl
except ImportError:  # not POSIX: work dirs are not locked
    fcntl = None

_PR_SET_PDEATHSIG = 1
_LAUNCHER_PID = os.getppid()
"""The parent when polarmask's engine was imported: under torchrun, its agent."""


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


def _exit_with_launcher() -> None:
    """Have the kernel send SIGTERM to this process when its launcher, the parent, dies.

    torchrun's workers are its children; a torchrun killed with SIGKILL cannot stop them, and
    they went on training (and writing checkpoints) as orphans. Linux only
    (``prctl(PR_SET_PDEATHSIG)``); a launcher that died before this call ends the process now.
    """
    if not sys.platform.startswith('linux'):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        print_log(
            f'prctl(PR_SET_PDEATHSIG) failed ({os.strerror(ctypes.get_errno())}): this process '
            'will not stop by itself if its launcher is killed',
            logger='current',
            level=logging.WARNING,
        )
    elif os.getppid() != _LAUNCHER_PID:
        os.kill(os.getpid(), signal.SIGTERM)


def end_process_group() -> None:
    """Destroy the default process group of a distributed run that ended normally.

    torch.distributed asks every process to call ``destroy_process_group`` before it exits.
    Left to the interpreter's exit, the group is torn down while Python is half gone: NCCL warns
    about it on every rank, and gloo's worker threads can abort the process after a successful
    run ("terminate called without an active exception", SIGABRT). The tools call this when the
    run returned; a run that raised exits without it, since destroying a group while a peer
    may still wait in a collective can hang. No-op outside a distributed run.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@RUNNERS.register_module()
class PolarRunner(Runner):
    """mmengine's Runner with CPU/gloo distributed support and checkpoints checked before use."""

    _resuming = False

    def setup_env(self, env_cfg: dict) -> None:
        if self._launcher == 'pytorch':
            _exit_with_launcher()
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

    def train(self) -> nn.Module:
        """mmengine's train, in a work dir that no other training uses at the same time."""
        if is_main_process():
            self._claim_work_dir()
        return super().train()

    def _claim_work_dir(self) -> None:
        """Lock ``<work_dir>/.train.lock`` for this process, or raise naming the run holding it.

        Two trainings in one work dir would overwrite each other's checkpoints and
        ``last_checkpoint``. The lock (``flock``, POSIX only) ends with the process, however it
        ends. A new run in a work dir with checkpoints of an earlier one is warned about.
        """
        if fcntl is None:
            return
        path = os.path.join(self.work_dir, '.train.lock')
        lock = open(path, 'a+', encoding='utf-8')  # held open until the process ends
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or 'another process'
            lock.close()
            raise RuntimeError(
                f"work dir '{self.work_dir}' is in use by another training ({holder}); two runs "
                "in one work dir overwrite each other's checkpoints: give this one its own "
                '--work-dir, or stop the other first'
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f'pid {os.getpid()} on {socket.gethostname()}, started {self.timestamp}\n')
        lock.flush()
        self._work_dir_lock = lock
        pointer = os.path.join(self.work_dir, 'last_checkpoint')
        if not self._resume and os.path.isfile(pointer):
            self.logger.warning(
                f"work dir '{self.work_dir}' holds the checkpoints of an earlier run "
                '(last_checkpoint): this run starts from scratch and replaces checkpoints of the '
                'same name as it saves; --resume continues the earlier run instead'
            )

    def build_train_loop(self, loop: BaseLoop | dict) -> BaseLoop:
        """mmengine's train loop, checked against the model's number of classes."""
        loop = super().build_train_loop(loop)
        self._check_classes(loop, 'train_dataloader')
        return loop

    def build_val_loop(self, loop: BaseLoop | dict) -> BaseLoop:
        """mmengine's val loop, checked against the model's number of classes."""
        loop = super().build_val_loop(loop)
        self._check_classes(loop, 'val_dataloader')
        return loop

    def build_test_loop(self, loop: BaseLoop | dict) -> BaseLoop:
        """mmengine's test loop, checked against the model's number of classes."""
        loop = super().build_test_loop(loop)
        self._check_classes(loop, 'test_dataloader')
        return loop

    def _detector(self) -> nn.Module:
        """The detector inside a model wrapper (DDP) or a test-time augmentation model."""
        model = self.model.module if is_model_wrapper(self.model) else self.model
        return model.module if isinstance(model, BaseTTAModel) else model

    def _check_classes(self, loop: BaseLoop, key: str) -> None:
        """Stop when the data has more classes than the head; warn when it has fewer."""
        model = self._detector()
        num_classes = getattr(getattr(model, 'bbox_head', None), 'num_classes', None)
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        if num_classes is None or not classes or len(classes) == num_classes:
            return
        where = f'{key}.dataset of config {config_name(self.cfg)}'
        if len(classes) > num_classes:
            raise ValueError(
                f'{where} has {len(classes)} classes but the head predicts {num_classes} '
                f'(model.bbox_head.num_classes): set --cfg-options '
                f'model.bbox_head.num_classes={len(classes)}, or select classes with '
                f'{key}.dataset.metainfo=dict(classes=(...))'
            )
        if key == 'train_dataloader':
            self.logger.warning(
                f'{where} has {len(classes)} classes but the head predicts {num_classes} '
                f'(model.bbox_head.num_classes): labels {len(classes)}..{num_classes - 1} have '
                f'no training data; set --cfg-options model.bbox_head.num_classes={len(classes)}'
            )

    def load_or_resume(self) -> None:
        """Resume (``--resume``) or load ``load_from``, once.

        As mmengine's, except that ``last_checkpoint`` may name the checkpoint relative to the
        work dir, that a missing one is said loudly, and that ``load_from`` of a training run
        may hold a classifier for another number of classes (fine-tuning, see
        :meth:`load_checkpoint`).
        """
        if self._has_loaded:
            return
        if self._resume:
            resume_from = self._load_from or self._last_checkpoint()
            if resume_from is not None:
                self.resume(resume_from)
                self._has_loaded = True
        elif self._load_from is not None:
            self.load_checkpoint(self._load_from, fine_tune=isinstance(self._train_loop, BaseLoop))
            self._has_loaded = True

    def _last_checkpoint(self) -> str | None:
        """The checkpoint ``<work_dir>/last_checkpoint`` names, None (warned) without one.

        A relative path is relative to the work dir. An absolute one (older versions) is
        replaced by the file of the same name in the work dir when there is one, so that a
        copied or moved work dir resumes from its own checkpoints.
        """
        pointer = os.path.join(self.work_dir, 'last_checkpoint')
        if not os.path.isfile(pointer):
            self.logger.warning(
                f"--resume: the work dir '{self.work_dir}' has no last_checkpoint (no checkpoint "
                'was saved there): training starts from scratch. Check --work-dir, or name the '
                'checkpoint: --resume CKPT'
            )
            return None
        with open(pointer, encoding='utf-8') as file:
            recorded = file.read().strip()
        if '://' in recorded:
            return recorded
        path = os.path.join(self.work_dir, recorded)
        own = os.path.join(self.work_dir, os.path.basename(recorded))
        if os.path.isabs(recorded) and os.path.isfile(own):
            path = own
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"'{pointer}' names the checkpoint '{recorded}', which does not exist (deleted, "
                'or the work dir was moved): resume from a checkpoint with --resume CKPT, or '
                f"delete '{pointer}' to start from scratch"
            )
        self.logger.info(f'Resuming from {path}, the last checkpoint of the work dir')
        return path

    def resume(
        self,
        filename: str,
        resume_optimizer: bool = True,
        resume_param_scheduler: bool = True,
        map_location: str = 'default',
    ) -> None:
        """mmengine's resume, after checking that the checkpoint's model and optimizer state fit
        the config (:meth:`load_checkpoint`)."""
        self._resuming = True
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        finally:
            self._resuming = False

    def load_checkpoint(
        self,
        filename: str,
        map_location: str | Callable = 'cpu',
        strict: bool = False,
        revise_keys: list | None = None,
        fine_tune: bool = False,
    ) -> dict:
        """mmengine's load_checkpoint (also used by resume), reading the file once and checking
        it before anything is loaded.

        Local files are read through the ``weights_only://`` scheme
        (:func:`~polarmask.engine.checkpoint.load_local_checkpoint`), whose errors name the file
        and the fix; URLs keep mmengine's loaders. The weights must fit the model exactly
        (:func:`~polarmask.engine.state_dict.check_state_dict`); when resuming, the optimizer
        state must fit the optimizer too
        (:func:`~polarmask.engine.state_dict.check_optimizer_state`). With ``fine_tune``
        (``load_from`` of a training run) a classifier trained for another number of classes
        (``bbox_head.polar_cls``) keeps its initialisation, with a warning saying so.

        Raises:
            ValueError: the checkpoint does not fit; the message names the fix.
        """
        revise_keys = MODULE_PREFIX if revise_keys is None else revise_keys
        checkpoint = _load_checkpoint(weights_only_uri(filename), map_location=map_location)
        model = self._detector()
        state_dict = checkpoint_weights(checkpoint, filename, revise_keys)
        replaced = keep_own_classifier(model, state_dict) if fine_tune else []
        config = config_name(self.cfg)
        check_state_dict(model, state_dict, filename, config)
        if self._resuming:
            self._check_resume_state(checkpoint, filename, model)
        if replaced:
            self.logger.warning(
                f"load_from '{filename}': its classifier {', '.join(replaced)} was trained for "
                f'another number of classes than config {config} sets '
                f'(model.bbox_head.num_classes={model.bbox_head.num_classes}): it keeps its '
                'initialisation (fine-tuning); every other weight is loaded from the checkpoint'
            )
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        _load_checkpoint_to_model(model, dict(state_dict=state_dict), strict, revise_keys=[])
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def _check_resume_state(self, checkpoint: dict, filename: str, model: nn.Module) -> None:
        """Raise when a checkpoint holds no training state or one for another optimizer."""
        meta = checkpoint.get('meta')
        if not isinstance(meta, dict) or 'epoch' not in meta or 'iter' not in meta:
            raise ValueError(
                f"checkpoint '{filename}' holds weights but no training state (meta with epoch "
                'and iter) to resume from: start from its weights with --cfg-options '
                'load_from=<checkpoint> and no --resume'
            )
        if 'optimizer' in checkpoint:
            self.optim_wrapper = self.build_optim_wrapper(self.optim_wrapper)
            optimizer = getattr(self.optim_wrapper, 'optimizer', None)
            if optimizer is not None:
                check_optimizer_state(
                    optimizer, model, checkpoint['optimizer'], filename, config_name(self.cfg)
                )

"""mmengine's Runner, made to work on CPU-only machines and with our checkpoint hooks.

mmengine 0.10.7's launchers call ``torch.cuda.set_device`` unconditionally and its runner passes
``device_ids=[LOCAL_RANK]`` to DistributedDataParallel; both fail without a GPU. On such a machine
:class:`PolarRunner` initialises torch.distributed with the ``gloo`` backend through mmengine's own
launchers (pytorch, slurm, mpi) and wraps the model in DDP without device ids. With CUDA present,
everything is mmengine's unchanged behaviour.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.runner import Runner

from polarmask.registry import MODEL_WRAPPERS, RUNNERS

_ALWAYS_ON_HOOKS = (dict(type='PlainCheckpointHook'), dict(type='LatestCheckpointHook'))


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


@RUNNERS.register_module()
class PolarRunner(Runner):
    """Runner with CPU/gloo distributed support and polarmask's checkpoint hooks."""

    def setup_env(self, env_cfg: dict) -> None:
        env_cfg = copy.deepcopy(dict(env_cfg))
        if self.distributed and not torch.cuda.is_available():
            dist_cfg = dict(env_cfg.get('dist_cfg', {}))
            dist_cfg['backend'] = 'gloo'
            env_cfg['dist_cfg'] = dist_cfg
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

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        custom_hooks = list(custom_hooks or [])
        present = {
            hook.get('type') if isinstance(hook, dict) else type(hook).__name__
            for hook in custom_hooks
        }
        custom_hooks += [dict(hook) for hook in _ALWAYS_ON_HOOKS if hook['type'] not in present]
        super().register_hooks(default_hooks, custom_hooks)

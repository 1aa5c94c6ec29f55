"""An optimizer wrapper constructor that keeps one parameter group per distinct set of options."""

from __future__ import annotations

from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from polarmask.registry import OPTIM_WRAPPER_CONSTRUCTORS


def merge_param_groups(param_groups: list[dict]) -> list[dict]:
    """Merge parameter groups whose options (every key but ``params``) are equal.

    Args:
        param_groups: groups as torch optimizers take them, each with a ``params`` list.

    Returns:
        list[dict]: one group per distinct option set, in order of first appearance; the
        parameters keep their order within each merged group.
    """
    merged: dict[tuple, dict] = {}
    for group in param_groups:
        options = {key: value for key, value in group.items() if key != 'params'}
        key = tuple(sorted((name, repr(value)) for name, value in options.items()))
        if key not in merged:
            merged[key] = dict(options, params=[])
        merged[key]['params'].extend(group['params'])
    return list(merged.values())


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GroupedOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, with parameters of equal options sharing a group.

    With a ``paramwise_cfg`` mmengine puts every parameter in a group of its own (83 groups
    for the demo model). torch's fused and foreach optimizers run once per group, so the
    demo's fused AdamW step paid 83 kernel launches and their Python overhead; merged, the same
    update runs in 2 groups (with and without decay). The options each parameter gets are
    exactly those of ``DefaultOptimWrapperConstructor``.

    An optimizer state saved with per-parameter groups does not load into merged groups (torch
    checks the group count), so resuming a run that was started without this constructor
    needs the constructor it was started with.
    """

    def add_params(
        self,
        params: list[dict],
        module: nn.Module,
        prefix: str = '',
        is_dcn_module: int | float | None = None,
    ) -> None:
        """Add ``module``'s parameters as mmengine does; the outermost call merges the groups."""
        super().add_params(params, module, prefix=prefix, is_dcn_module=is_dcn_module)
        if not prefix:
            # A group that states the optimizer's own lr or decay has the options of one that
            # leaves them out (mmengine states them for norm layers, e.g. norm_decay_mult=1).
            defaults = {
                key: value
                for key, value in (('lr', self.base_lr), ('weight_decay', self.base_wd))
                if value is not None
            }
            params[:] = merge_param_groups([{**defaults, **group} for group in params])

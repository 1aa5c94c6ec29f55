"""Import every registering module once and set the default registry scope."""

from __future__ import annotations

import importlib

from mmengine.registry import DefaultScope

_REGISTERING_MODULES = (
    'polarmask.engine',
    'polarmask.models',
    'polarmask.datasets',
    'polarmask.evaluation',
    'polarmask.visualization',
)


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register all of polarmask's modules in its registries.

    Args:
        init_default_scope: also make ``polarmask`` the current default scope, so that configs
            can name our classes without a ``polarmask.`` prefix.
    """
    for module in _REGISTERING_MODULES:
        importlib.import_module(module)
    if init_default_scope and DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance('polarmask', scope_name='polarmask')

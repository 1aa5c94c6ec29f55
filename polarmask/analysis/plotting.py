"""matplotlib is optional: the analysis tools draw figures when it is installed and write their
numbers either way."""

from __future__ import annotations

from types import ModuleType


def optional_pyplot(interactive: bool = False) -> ModuleType | None:
    """``matplotlib.pyplot``, or None when matplotlib is not installed.

    Args:
        interactive: keep matplotlib's default backend (to show windows); otherwise use the
            file-only ``Agg`` backend.
    """
    try:
        import matplotlib
    except ImportError:
        return None
    if not interactive:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


_FILE_BACKENDS = ('agg', 'cairo', 'pdf', 'pgf', 'ps', 'svg', 'template')


def can_show(plt: ModuleType) -> bool:
    """Whether pyplot's backend opens windows (matplotlib falls back to ``Agg`` without a
    display)."""
    return plt.get_backend().lower() not in _FILE_BACKENDS


NO_MATPLOTLIB = 'matplotlib is not installed: no figure, only the numbers'
"""The note the tools print when :func:`optional_pyplot` returns None."""

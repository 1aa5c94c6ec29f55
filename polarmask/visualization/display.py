"""Whether OpenCV can open a window here, asked before the first ``imshow``.

OpenCV's Qt build aborts the whole process (SIGABRT, exit status 134) when it finds no display,
so ``--show`` on a server or in a container must be caught before any window is opened.
"""

from __future__ import annotations

import os
import sys

import cv2


def _opencv_gui() -> str:
    """The GUI backend OpenCV was built with (``'QT5'``, ``'GTK3'``, ..., ``'NONE'``)."""
    for line in cv2.getBuildInformation().splitlines():
        key, _, value = line.partition(':')
        if key.strip() == 'GUI':
            return value.strip()
    return 'UNKNOWN'


def display_problem() -> str | None:
    """Why no OpenCV window can be opened here, or None when one can.

    Checks that OpenCV has a GUI backend (``opencv-python-headless`` has none) and, on Linux and
    the BSDs, that ``DISPLAY`` or ``WAYLAND_DISPLAY`` is set; a Qt platform chosen with
    ``QT_QPA_PLATFORM`` (e.g. ``offscreen``) counts as a display. A ``DISPLAY`` that is set but
    unreachable is not detected.

    Returns:
        str | None: one sentence naming the cause, e.g. ``'no display (DISPLAY and
        WAYLAND_DISPLAY are not set)'``.
    """
    gui = _opencv_gui()
    if gui == 'NONE':
        return 'OpenCV was built without a GUI (opencv-python-headless)'
    if sys.platform in ('win32', 'darwin'):
        return None
    if any(os.environ.get(name) for name in ('DISPLAY', 'WAYLAND_DISPLAY', 'QT_QPA_PLATFORM')):
        return None
    return 'no display (DISPLAY and WAYLAND_DISPLAY are not set)'


def show_or_write(show: bool, written_to: str | None, write_flags: str) -> bool:
    """Whether a command shows its drawings in windows: ``show``, unless there is no display.

    Without a display, a command that writes its drawings anyway says so in one line on stderr
    and does not show them; one that would only have shown them stops.

    Args:
        show: the command line asks for windows.
        written_to: where the drawings are written as well (a folder or file), or None.
        write_flags: the flags that write them, for the message (e.g. ``'--show-dir DIR'``).

    Returns:
        bool: whether to open windows.

    Raises:
        RuntimeError: no display and ``written_to`` is None; the message names ``write_flags``.
    """
    problem = display_problem() if show else None
    if problem is None:
        return show
    if written_to is None:
        raise RuntimeError(f'{problem}: cannot show the drawings; write them with {write_flags}')
    print(
        f'{problem}: not showing the drawings, only writing them to {written_to}', file=sys.stderr
    )
    return False

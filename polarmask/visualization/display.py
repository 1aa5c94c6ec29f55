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

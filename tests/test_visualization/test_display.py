"""display_problem: OpenCV windows are refused before Qt can abort the process."""

import sys

import pytest

from polarmask.visualization import display, display_problem

DISPLAY_VARIABLES = ('DISPLAY', 'WAYLAND_DISPLAY', 'QT_QPA_PLATFORM')


@pytest.fixture
def linux_without_display(monkeypatch):
    monkeypatch.setattr(sys, 'platform', 'linux')
    monkeypatch.setattr(display, '_opencv_gui', lambda: 'QT5')
    for name in DISPLAY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_no_display_variable_is_a_problem(linux_without_display):
    assert display_problem() == 'no display (DISPLAY and WAYLAND_DISPLAY are not set)'


@pytest.mark.parametrize(('name', 'value'), [('DISPLAY', ':0'), ('QT_QPA_PLATFORM', 'offscreen')])
def test_a_display_or_a_qt_platform_is_enough(linux_without_display, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert display_problem() is None


def test_headless_opencv_is_a_problem_even_with_a_display(monkeypatch):
    monkeypatch.setattr(display, '_opencv_gui', lambda: 'NONE')
    monkeypatch.setenv('DISPLAY', ':0')
    assert 'without a GUI' in display_problem()


def test_opencv_gui_is_read_from_the_build_information():
    assert display._opencv_gui() not in ('', 'UNKNOWN')

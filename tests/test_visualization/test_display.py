"""display_problem: OpenCV windows are refused before Qt can abort the process."""

import sys

import pytest

from polarmask.visualization import display, display_problem, show_or_write

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


def test_show_or_write_without_a_display(linux_without_display, capsys):
    assert show_or_write(False, None, '--out FILE') is False
    assert show_or_write(True, 'out.mp4', '--out FILE') is False
    assert 'not showing the drawings, only writing them to out.mp4' in capsys.readouterr().err
    with pytest.raises(RuntimeError, match='cannot show the drawings; write them with --out FILE'):
        show_or_write(True, None, '--out FILE')


def test_show_or_write_with_a_display(linux_without_display, monkeypatch):
    monkeypatch.setenv('DISPLAY', ':0')
    assert show_or_write(True, None, '--out FILE') is True

"""The dependency ranges of setup.py hold CI's exact versions and the environment under test."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# A distribution that provides the same module under another name.
ALTERNATIVES = {'opencv-python': ('opencv-python-headless', 'opencv-contrib-python')}


def requirements(path: Path) -> list[Requirement]:
    """The requirements of a pip requirements file, following its ``-r`` includes."""
    found = []
    for line in path.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line.startswith('-r '):
            found += requirements(path.parent / line[3:].strip())
        elif line:
            found.append(Requirement(line))
    return found


def installed_version(name: str) -> str | None:
    for distribution in (name, *ALTERNATIVES.get(name, ())):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


RANGES = requirements(ROOT / 'requirements' / 'runtime.txt')


def test_ci_installs_exact_versions_within_the_ranges():
    ranges = {requirement.name: requirement.specifier for requirement in RANGES}
    pins = [r for r in requirements(ROOT / 'requirements.txt') if str(r.specifier)[:2] == '==']
    assert {pin.name for pin in pins} == {'torch', 'torchvision', 'mmengine', 'mmcv-lite'}
    for pin in pins:
        version = str(pin.specifier)[2:]
        assert ranges[pin.name].contains(version), f'{pin} is outside {pin.name}{ranges[pin.name]}'


@pytest.mark.parametrize('requirement', RANGES, ids=str)
def test_the_environment_under_test_is_within_the_ranges(requirement):
    version = installed_version(requirement.name)
    assert version is not None, f'{requirement.name} is not installed'
    # A local version label (torch's +cpu / +cu128) does not count in the comparison.
    public = version.split('+', 1)[0]
    assert requirement.specifier.contains(public, prereleases=True), (
        f'{requirement.name} {version} is outside the tested range {requirement.specifier}'
    )

"""Shared tiny dataset and one uninterrupted 2-process training run for the distributed tests."""

from pathlib import Path

import pytest

from tests.test_distributed.tiny import (
    CONFIG,
    environment,
    free_port,
    make_tiny_data,
    run,
    train_options,
)


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> Path:
    """Root of the tiny shapes dataset (12 train, 5 val images of 64x64)."""
    return make_tiny_data(tmp_path_factory.mktemp('data') / 'shapes')


@pytest.fixture(scope='session')
def uninterrupted(tiny_data: Path, tmp_path_factory) -> Path:
    """Work dir of ``tools/dist_train.sh CONFIG 2`` run to the end (6 iterations) on the CPU."""
    work = tmp_path_factory.mktemp('uninterrupted')
    command = ['sh', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(work)]
    seconds = run(
        command + train_options(tiny_data),
        work / 'train.log',
        environment(PORT=str(free_port())),
        timeout=300,
    )
    (work / 'seconds').write_text(f'{seconds:.1f}')
    return work

"""CPU processes of a distributed run use their share of threads, also under ``srun``."""

import os

import pytest
import torch

from polarmask.engine.runner import _limit_cpu_threads


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ('omp', 'slurm', 'expected'), [(None, None, 1), (None, '2', 2), ('1', '2', 1)]
)
def test_threads_from_omp_then_slurm_then_one(monkeypatch, restore_threads, omp, slurm, expected):
    monkeypatch.delenv('MKL_NUM_THREADS', raising=False)
    for name, value in (('OMP_NUM_THREADS', omp), ('SLURM_CPUS_PER_TASK', slurm)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    torch.set_num_threads(3)
    _limit_cpu_threads()
    assert torch.get_num_threads() == expected
    assert os.environ['OMP_NUM_THREADS'] == os.environ['MKL_NUM_THREADS'] == str(expected)

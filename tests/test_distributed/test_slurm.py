"""``tools/slurm_*.sh`` build the seed's srun lines; ``.ci/slurm.sh`` runs them on real Slurm.

The srun line is checked with a stand-in ``srun`` that records its arguments: the seed's 32-GPU
shape with GPUs, and no ``--gres`` (which a GPU-less node rejects) with ``GPUS_PER_NODE=0``.
"""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.test_distributed.tiny import ROOT, environment

RECORDING_SRUN = '#!/bin/sh\nprintf "%s\\n" "$@" > "$SRUN_ARGS_FILE"\n'


def _srun_arguments(tmp_path: Path, script: str, args: list[str], **env: str) -> list[str]:
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / 'srun'
    srun.write_text(RECORDING_SRUN)
    srun.chmod(0o755)
    record = tmp_path / 'srun-args'
    environ = environment(SRUN_ARGS_FILE=str(record), **env)
    environ['PATH'] = f'{bin_dir}{os.pathsep}{environ["PATH"]}'
    subprocess.run(['sh', f'tools/{script}', *args], cwd=ROOT, env=environ, check=True)
    return record.read_text().splitlines()


def test_slurm_train_seed_32_gpu_line(tmp_path):
    args = _srun_arguments(
        tmp_path,
        'slurm_train.sh',
        ['PARTITION', 'polarmask', 'configs/polarmask/32gpu/polar_768_1x_r50.py', 'w', '--x'],
        GPUS='32',
        GPUS_PER_NODE='4',
    )
    for expected in ('--gres=gpu:4', '--ntasks=32', '--ntasks-per-node=4', '--kill-on-bad-exit=1'):
        assert expected in args, args
    assert args[:2] == ['-p', 'PARTITION']
    assert args[args.index('python') :] == [
        'python',
        '-u',
        f'{ROOT}/tools/train.py',
        'configs/polarmask/32gpu/polar_768_1x_r50.py',
        '--work-dir=w',
        '--launcher=slurm',
        '--x',
    ]


def test_slurm_test_without_gpus_drops_gres(tmp_path):
    args = _srun_arguments(
        tmp_path,
        'slurm_test.sh',
        ['debug', 'polarmask-test', 'c.py', 'w/latest.pth', '--eval', 'segm'],
        GPUS='2',
        GPUS_PER_NODE='0',
        CPUS_PER_TASK='1',
        SRUN_ARGS='--time=5',
    )
    assert not [arg for arg in args if arg.startswith(('--gres', '--ntasks-per-node'))], args
    for expected in ('--ntasks=2', '--cpus-per-task=1', '--kill-on-bad-exit=1', '--time=5'):
        assert expected in args, args
    assert args[args.index('python') + 3 :] == [
        'c.py',
        'w/latest.pth',
        '--launcher=slurm',
        '--eval',
        'segm',
    ]


@pytest.mark.skipif(
    os.environ.get('POLARMASK_SLURM_CI') != '1',
    reason='installs packages and starts slurmctld/slurmd as root (about 1-4 minutes); '
    '.ci/run runs .ci/slurm.sh itself. Set POLARMASK_SLURM_CI=1 to run it from pytest',
)
def test_real_slurm_cluster(tmp_path):
    result = subprocess.run(
        ['bash', '.ci/slurm.sh', str(tmp_path)],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (
        shlex.join(result.args) + '\n' + result.stdout[-3000:] + result.stderr[-3000:]
    )
    assert 'slurm CI: OK' in result.stdout

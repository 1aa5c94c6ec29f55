"""Faults in real runs: a rank killed mid-epoch, a kill while saving, a hung rank.

- ``kill -9`` of one of 2 torchrun processes in the middle of epoch 2 ends the job with an error
  within seconds; ``--resume`` continues from the last checkpoint and ends with weights and
  optimizer state bit-identical to the uninterrupted run's.
- SIGKILL while a checkpoint is being written (keeping only one checkpoint, which mmengine's own
  hook deletes *before* writing the next) leaves the previous checkpoint, ``last_checkpoint``
  and ``latest.pth`` intact, and ``--resume`` continues from them.
- A rank that stops responding (SIGSTOP) makes the other one fail after
  ``env_cfg.dist_cfg.timeout`` seconds instead of waiting forever.
- ``kill -9`` of torchrun itself ends its workers within seconds (parent-death signal) instead
  of leaving them training as orphans.
"""

import os
import re
import signal
import time
from pathlib import Path

import torch

from tests.test_distributed.tiny import (
    CONFIG,
    environment,
    finish,
    free_port,
    last_checkpoint,
    load,
    run,
    start,
    tail,
    train_options,
    train_workers,
    wait_for,
)


def _dist_train(work: Path, *args: str) -> list[str]:
    return ['sh', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(work), *args]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as not running)."""
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except OSError:
        return False
    return state != 'Z'


def test_rank_killed_mid_epoch_then_resume_equals_uninterrupted(
    uninterrupted: Path, tiny_data: Path, tmp_path
):
    work = tmp_path / 'work'
    log = tmp_path / 'killed.log'
    job = start(
        _dist_train(work, *train_options(tiny_data)), log, environment(PORT=str(free_port()))
    )
    wait_for(
        lambda: (work / 'last_checkpoint').is_file() and last_checkpoint(work).name == 'iter_4.pth',
        240,
        f'checkpoint iter_4.pth (epoch 2 of 2, batch 1 of 3):\n{log}',
    )
    ranks = train_workers(job.pid)
    assert len(ranks) == 2, ranks
    killed_at = time.monotonic()
    os.kill(ranks[1], signal.SIGKILL)
    code = finish(job, log, timeout=60)
    seconds = time.monotonic() - killed_at
    assert code != 0, tail(log)
    assert seconds < 30, f'torchrun took {seconds:.1f} s to end the job after rank 1 died'
    assert not any(_alive(pid) for pid in ranks)
    assert last_checkpoint(work).name == 'iter_4.pth'
    assert (work / 'latest.pth').resolve() == (work / 'iter_4.pth').resolve()

    resumed = tmp_path / 'resumed.log'
    run(
        _dist_train(work, '--resume', *train_options(tiny_data)),
        resumed,
        environment(PORT=str(free_port())),
        timeout=240,
    )
    text = resumed.read_text()
    assert 'resumed epoch: 1, iter: 4' in text
    assert 'replaying 1 batches' in text
    assert not re.search(r'Epoch\(train\)\s+\[2\]\[1/3\]', text), 'batch 1 trained twice'

    ours, reference = load(work / 'iter_6.pth'), load(uninterrupted / 'iter_6.pth')
    assert ours['meta']['iter'] == reference['meta']['iter'] == 6
    different = [
        name
        for name, tensor in reference['state_dict'].items()
        if not torch.equal(tensor, ours['state_dict'][name])
    ]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:3]}'
    for key, state in reference['optimizer']['state'].items():
        for name, value in state.items():
            assert torch.equal(value, ours['optimizer']['state'][key][name]), (key, name)


def test_kill_while_saving_keeps_last_checkpoint(tiny_data: Path, tmp_path):
    work = tmp_path / 'work'
    # One process, 4 images per batch: 3 iterations, a checkpoint after each, only 1 kept.
    options = train_options(
        tiny_data,
        [
            'train_cfg.max_epochs=1',
            'train_dataloader.batch_size=4',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=1',
        ],
    )
    log = tmp_path / 'killed.log'
    crash = ['python', 'tests/test_distributed/crash_on_save.py', 'iter_2.pth', CONFIG]
    code = finish(start([*crash, '--work-dir', str(work), *options], log, environment()), log, 180)
    assert code == -signal.SIGKILL, (
        f'not killed while saving iter_2.pth (exit {code}):\n{tail(log)}'
    )

    names = sorted(path.name for path in work.iterdir() if path.is_file() or path.is_symlink())
    partial = [name for name in names if re.fullmatch(r'\.iter_2\.pth\.tmp-\d+', name)]
    assert len(partial) == 1, names
    assert 'iter_2.pth' not in names
    assert last_checkpoint(work) == work / 'iter_1.pth'
    assert (work / 'latest.pth').resolve() == (work / 'iter_1.pth').resolve()
    previous = load(work / 'iter_1.pth')
    assert previous['meta']['iter'] == 1 and previous['state_dict']

    resumed = tmp_path / 'resumed.log'
    run(
        ['python', 'tools/train.py', CONFIG, '--work-dir', str(work), '--resume', *options],
        resumed,
        environment(),
    )
    text = resumed.read_text()
    assert 'resumed epoch: 0, iter: 1' in text
    assert f"removed '{partial[0]}'" in text
    assert not (work / partial[0]).exists()
    assert last_checkpoint(work) == work / 'iter_3.pth'
    assert sorted(path.name for path in work.glob('*.pth')) == ['iter_3.pth', 'latest.pth']


def test_hung_rank_makes_the_other_fail_within_the_dist_timeout(tiny_data: Path, tmp_path):
    timeout = 10
    options = train_options(
        tiny_data,
        [
            f'env_cfg.dist_cfg.timeout={timeout}',
            'train_cfg.max_epochs=50',
            'default_hooks.checkpoint.interval=1000',
        ],
    )
    log = tmp_path / 'hung.log'
    job = start(_dist_train(tmp_path / 'work', *options), log, environment(PORT=str(free_port())))
    try:
        wait_for(
            lambda: re.search(r'Epoch\(train\)\s+\[1\]\[1/3\]', log.read_text()),
            240,
            f'the first iteration in {log}',
        )
        survivor, hung = train_workers(job.pid)
        stopped_at = time.monotonic()
        os.kill(hung, signal.SIGSTOP)
        wait_for(lambda: not _alive(survivor), 60, 'the other rank to give up on the stopped one')
        seconds = time.monotonic() - stopped_at
        assert seconds < timeout + 20, f'rank 0 failed {seconds:.1f} s after rank 1 stopped'
        assert f'Timed out waiting {timeout * 1000}ms' in log.read_text(), tail(log)
    finally:
        for pid in train_workers(job.pid):
            os.kill(pid, signal.SIGKILL)
        code = finish(job, log, timeout=60)
    assert code != 0


def test_killed_launcher_ends_its_workers(tiny_data: Path, tmp_path):
    options = train_options(
        tiny_data, ['train_cfg.max_epochs=50', 'default_hooks.checkpoint.interval=1000']
    )
    log = tmp_path / 'orphans.log'
    job = start(_dist_train(tmp_path / 'work', *options), log, environment(PORT=str(free_port())))
    workers = []
    try:
        wait_for(
            lambda: re.search(r'Epoch\(train\)\s+\[1\]\[1/3\]', log.read_text()),
            240,
            f'the first iteration in {log}',
        )
        workers = train_workers(job.pid)
        assert len(workers) == 2, workers
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
        wait_for(lambda: not any(_alive(pid) for pid in workers), 10, 'the orphaned workers to end')
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

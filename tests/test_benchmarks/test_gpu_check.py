"""The GPU check (benchmarks/gpu): its CPU dry run, the stage runner and the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.gpu import check
from benchmarks.gpu.context import StageContext
from benchmarks.gpu.report import markdown_table

ROOT = Path(__file__).resolve().parents[2]
# Every stage but the build (which would compile polarmask/_C in this checkout), at tiny sizes:
# the same code as the GPU run with --device cpu. The tests stage runs test_markdown_table below.
DRY_RUN = [
    '--device', 'cpu',
    '--stages', 'env', 'kernels', 'tests', 'nms', 'targets', 'inference', 'train',
    '--image-size', '32', '32',
    '--tests', 'tests/test_benchmarks/test_gpu_check.py::test_markdown_table',
    '--nms-sizes', '300',
    '--target-images', '2',
    '--instances', '3',
    '--train-batch', '2', '--train-iters', '2', '--train-warmup', '0',
    '--train-variants', 'fp32', 'fp32-cl', 'fp16',
    '--infer-batches', '2', '--infer-dtypes', 'fp32', 'bf16',
    '--infer-iters', '2', '--infer-warmup', '0', '--infer-candidates', '50',
]  # fmt: skip


def test_markdown_table():
    lines = markdown_table(
        ['a', 'b', 'c', 'd'], [[1.23456, True, None, 'x|y'], [3, False, 0.5, '']]
    )
    assert lines == [
        '| a | b | c | d |',
        '|---|---|---|---|',
        '| 1.235 | yes | - | x\\|y |',
        '| 3 | NO | 0.5 |  |',
    ]


def test_cpu_dry_run_writes_every_stage(tmp_path):
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, '-m', 'benchmarks.gpu.check', '--out', str(tmp_path), *DRY_RUN],
        cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads((tmp_path / 'gpu_check.json').read_text())
    stages = report['stages']
    assert list(stages) == list(check.STAGES)
    assert stages['build'] == dict(status='skipped', note='not in --stages', results={})
    for name in check.STAGES[2:]:
        assert stages[name]['status'] == 'ok', (name, stages[name])
    results = {name: entry['results'] for name, entry in stages.items()}
    assert results['env']['torch'] and results['env']['packages']['mmengine']
    assert results['kernels']['registered']['CPU']
    assert results['tests']['summary']['counts'] == dict(passed=1, failed=0, skipped=0)
    assert {row['op'] for row in results['nms']['rows']} >= {'nms', 'batched_nms'}
    assert all(row['same'] for row in results['nms']['rows'])
    assert results['targets']['same'] and results['targets']['positives'] > 0
    variants = results['train']['variants']
    assert variants['fp32']['status'] == 'ok' and variants['fp32']['iterations'] == 2
    assert variants['fp32-cl']['status'] == 'ok' and variants['fp32']['loss'] > 0
    assert variants['fp16']['status'].startswith('skipped')
    rows = results['inference']['rows']
    assert [(row['scenario'], row['precision']) for row in rows] == [
        ('configured', 'fp32'),
        ('configured', 'bf16'),
        ('loaded', 'fp32'),
        ('loaded', 'bf16'),
    ]
    assert all(row['status'] == 'ok' and row['fps'] > 0 for row in rows)
    loaded = rows[2]
    assert 0 < loaded['nms_boxes_per_image'] <= 2 * 50 and loaded['detections_per_image'] > 0
    assert loaded['ms_per_image']['network'] > 0 and loaded['ms_per_image']['masks'] > 0
    assert len(results['inference']['goals']) == 2

    markdown = (tmp_path / 'gpu_check.md').read_text()
    for name in check.STAGES:
        assert f'| {name} | {stages[name]["status"]} |' in markdown
    assert '## nms: NMS' in markdown and '## train: training' in markdown
    assert seconds < 120, f'the dry run took {seconds:.0f} s'


@pytest.mark.parametrize(
    ('precision', 'wrapper', 'dtype'),
    [
        ('fp32', 'OptimWrapper', None),
        ('fp16', 'AmpOptimWrapper', None),
        ('bf16', 'AmpOptimWrapper', 'bfloat16'),
    ],
)
def test_training_config_is_the_train_command_line(precision, wrapper, dtype, monkeypatch):
    # Imported here: the module stays light for the dry run's own pytest of test_markdown_table.
    import torch

    from benchmarks.gpu import model_stages

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)  # --amp asks for a GPU
    cfg = model_stages.training_config('configs/polarmask/4gpu/polar_768_1x_r50.py', precision)
    assert cfg.optim_wrapper.type == wrapper and cfg.optim_wrapper.get('dtype') == dtype
    assert cfg.optim_wrapper.get('loss_scale') == (None if precision == 'fp32' else 'dynamic')
    assert cfg.optim_wrapper.optimizer.lr == model_stages.TRAIN_LR
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    assert cfg.model.backbone.init_cfg is None
    assert model_stages.parse_variant('bf16-cl') == ('bf16', True)
    with pytest.raises(ValueError, match='channels_last'):
        model_stages.parse_variant('fp8')


def _record_then_sleep(context: StageContext) -> None:
    context.put('first', 1)
    time.sleep(60)


def _raise(context: StageContext) -> None:
    context.put('before', True)
    raise ValueError('broken stage')


def _failed_check(context: StageContext) -> None:
    context.fail('keep indices differ')


def test_stage_outcomes(tmp_path):
    args = check.parse_args(['--out', str(tmp_path)])
    start = time.monotonic()
    entry = check.run_stage('slow', _record_then_sleep, args, 2.0, tmp_path)
    assert time.monotonic() - start < 10
    assert entry['status'] == 'timeout' and entry['results'] == dict(first=1)

    entry = check.run_stage('broken', _raise, args, 30.0, tmp_path)
    assert entry['status'] == 'failed' and entry['note'] == 'ValueError: broken stage'
    assert entry['results']['before'] is True and 'broken stage' in entry['results']['traceback']

    entry = check.run_stage('checked', _failed_check, args, 30.0, tmp_path)
    assert entry['status'] == 'failed' and entry['note'] == 'keep indices differ'


def test_out_of_time_stages_are_skipped_with_a_status(tmp_path, monkeypatch):
    monkeypatch.setenv('PYTORCH_NVML_BASED_CUDA_CHECK', '1')  # main() sets it
    monkeypatch.setattr(check, 'stage_functions', lambda: {name: None for name in check.STAGES})
    status = check.main(['--out', str(tmp_path), '--device', 'cpu', '--time-limit', '5'])
    assert status == 1
    report = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert {entry['status'] for entry in report['stages'].values()} == {'skipped'}
    assert report['stages']['env']['note'] == 'out of time (5 s left)'

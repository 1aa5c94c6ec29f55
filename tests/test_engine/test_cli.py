"""The seed's command lines and mmdetection 3.x's parse into the intended runner configs."""

import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from mmengine.registry import RUNNERS

from polarmask.engine.cli import (
    build_test_parser,
    build_train_parser,
    config_for_testing,
    config_for_training,
    error_file,
    report_errors,
)
from polarmask.utils import config as config_module
from polarmask.utils import register_all_modules

R50_4GPU = 'configs/polarmask/4gpu/polar_768_1x_r50.py'
R50_32GPU = 'configs/polarmask/32gpu/polar_768_1x_r50.py'
DEMO = 'configs/polarmask/demo/polar_shapes_r18.py'


def test_seed_4gpu_command_with_launcher_given_twice():
    # tools/dist_train.sh appends `--launcher pytorch` after the user's own `--launcher pytorch`.
    argv = [
        R50_4GPU,
        '--launcher',
        'pytorch',
        '--work_dir',
        './work_dirs/polar_768_1x_r50_4gpu',
        '--launcher',
        'pytorch',
        '--local_rank',
        '3',
    ]
    args = build_train_parser().parse_args(argv)
    cfg = config_for_training(args)
    assert cfg.launcher == 'pytorch'
    assert cfg.work_dir == './work_dirs/polar_768_1x_r50_4gpu'


def test_seed_32gpu_slurm_spelling():
    args = build_train_parser().parse_args([R50_32GPU, '--launcher=slurm', '--work_dir', 'w'])
    cfg = config_for_training(args)
    assert cfg.launcher == 'slurm'
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.08)


def test_original_resume_validate_seed_spellings():
    args = build_train_parser().parse_args(
        [R50_4GPU, '--resume_from', 'w/epoch_3.pth', '--validate', '--seed', '7']
    )
    cfg = config_for_training(args)
    assert cfg.resume is True and cfg.load_from == 'w/epoch_3.pth'
    assert cfg.randomness['seed'] == 7
    assert cfg.val_dataloader is not None


def test_mmdet3_flags(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)  # for --amp
    args = build_train_parser().parse_args(
        [
            R50_4GPU,
            '--resume',
            '--amp',
            '--auto-scale-lr',
            '--no-validate',
            '--cfg-options',
            'train_dataloader.batch_size=2',
        ]
    )
    cfg = config_for_training(args)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.auto_scale_lr.enable is True
    assert cfg.val_dataloader is None and cfg.val_evaluator is None
    assert cfg.train_dataloader.batch_size == 2


def test_seed_test_command(tmp_path):
    checkpoint = tmp_path / 'latest.pth'
    checkpoint.write_bytes(b'')
    out = tmp_path / 'res.pkl'
    args = build_test_parser().parse_args(
        [R50_4GPU, str(checkpoint), '--launcher', 'pytorch', '--out', str(out), '--eval', 'segm']
    )
    cfg = config_for_testing(args)
    assert cfg.load_from == str(checkpoint)
    types = [evaluator['type'] for evaluator in cfg.test_evaluator]
    assert types == ['CocoMetric', 'DumpDetResults']
    assert cfg.test_evaluator[0]['metric'] == ['segm']
    assert 'train_dataloader' not in cfg


def test_test_run_keeps_the_config_training_saved(tmp_path):
    register_all_modules()
    saved = tmp_path / 'polar_shapes_r18.py'
    saved.write_text('# written by tools/train.py\n')
    checkpoint = tmp_path / 'latest.pth'
    checkpoint.write_bytes(b'')
    args = build_test_parser().parse_args([DEMO, str(checkpoint), '--work-dir', str(tmp_path)])
    runner = RUNNERS.build(config_for_testing(args))
    assert saved.read_text() == '# written by tools/train.py\n'
    test_config = tmp_path / runner.timestamp / 'polar_shapes_r18.py'
    assert 'test_dataloader' in test_config.read_text()


def test_test_rejects_bad_out_and_missing_checkpoint(tmp_path):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')
    args = build_test_parser().parse_args([R50_4GPU, str(checkpoint), '--out', 'res.json'])
    with pytest.raises(ValueError, match='.pkl'):
        config_for_testing(args)
    args = build_test_parser().parse_args([R50_4GPU, str(tmp_path / 'missing.pth')])
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        config_for_testing(args)


def test_missing_config_names_the_file():
    args = build_train_parser().parse_args(['configs/nope.py'])
    with pytest.raises(FileNotFoundError, match='configs/nope.py'):
        config_for_training(args)


def test_test_show_without_a_display_is_refused_or_writes_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, 'platform', 'linux')
    for name in ('DISPLAY', 'WAYLAND_DISPLAY', 'QT_QPA_PLATFORM'):
        monkeypatch.delenv(name, raising=False)
    checkpoint = tmp_path / 'latest.pth'
    checkpoint.write_bytes(b'')
    args = build_test_parser().parse_args([DEMO, str(checkpoint), '--show'])
    with pytest.raises(RuntimeError, match='write them with --show-dir DIR'):
        config_for_testing(args)
    args = build_test_parser().parse_args([DEMO, str(checkpoint), '--show', '--show-dir', 'vis'])
    visualization = config_for_testing(args).default_hooks.visualization
    assert visualization.show is False and visualization.test_out_dir == 'vis'


def test_amp_without_cuda_is_one_clear_refusal(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    args = build_train_parser().parse_args([DEMO, '--amp'])
    with pytest.raises(RuntimeError, match='^--amp needs CUDA .*train without --amp'):
        config_for_training(args)


def test_cfg_options_key_without_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_train_parser().parse_args([DEMO, '--cfg-options', 'train_cfg.max_epochs'])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--cfg-options 'train_cfg.max_epochs' has no value: write KEY=VALUE" in error


def test_cfg_options_value_of_the_wrong_type_names_the_key():
    args = build_train_parser().parse_args([DEMO, '--cfg-options', 'train_cfg.max_epochs=ten'])
    with pytest.raises(TypeError, match=r'max_epochs=ten: config .* holds a number there \(15\)'):
        config_for_training(args)


def test_misspelt_and_original_top_level_keys_are_warned(monkeypatch):
    warnings: list[str] = []
    monkeypatch.setattr(config_module, 'print_log', lambda msg, **kw: warnings.append(msg))
    options = ['optim_wraper.clip_grad=None', 'total_epochs=12', 'img_scale=(64,64)']
    config_for_training(build_train_parser().parse_args([DEMO, '--cfg-options', *options]))
    assert len(warnings) == 2
    assert "'optim_wraper' is not read by the runner: did you mean 'optim_wrapper'?" in warnings[0]
    assert "'total_epochs' of the original PolarMask configs" in warnings[1]
    assert 'use train_cfg.max_epochs' in warnings[1]


def test_failures_keep_one_traceback_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    for message in ('first', 'second'):
        with pytest.raises(SystemExit), report_errors('cmd'):
            raise ValueError(message)
    assert capsys.readouterr().err.splitlines()[-2:] == [
        'error: cmd: ValueError: second',
        f'(full traceback: {error_file()})',
    ]
    assert [path.name for path in tmp_path.iterdir()] == [os.path.basename(error_file())]
    assert 'ValueError: second' in Path(error_file()).read_text()

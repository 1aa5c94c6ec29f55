"""End to end through the command lines: train on the demo data, resume, test with --out/--eval."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DEMO = 'configs/polarmask/demo/polar_shapes_r18.py'


def _data_options(data_root: Path) -> list[str]:
    return [
        f'train_dataloader.dataset.data_root={data_root}/',
        f'val_dataloader.dataset.data_root={data_root}/',
        f'val_evaluator.ann_file={data_root}/annotations/instances_val.json',
        f'test_dataloader.dataset.data_root={data_root}/',
        f'test_evaluator.ann_file={data_root}/annotations/instances_val.json',
        'train_dataloader.dataset.generator_cfg.num_train=8',
        'train_dataloader.dataset.generator_cfg.num_val=4',
        'val_dataloader.dataset.generator_cfg.num_train=8',
        'val_dataloader.dataset.generator_cfg.num_val=4',
        'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
    ]


def _run(args: list[str], returncode: int = 0, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python *args`` from the repository root; assert its exit status."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == returncode, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _failing_train(
    work_dir: Path, options: list[str], *overrides: str, flags: tuple[str, ...] = ()
) -> list[str]:
    """stderr lines of a ``tools/train.py`` run of the demo that must exit with status 1."""
    result = _run(
        [
            'tools/train.py',
            DEMO,
            '--work-dir',
            str(work_dir),
            *flags,
            '--cfg-options',
            *options,
            *overrides,
        ],
        returncode=1,
        timeout=300,
    )
    return result.stderr.strip().splitlines()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One epoch (2 iterations) of training on freshly generated demo data."""
    tmp = tmp_path_factory.mktemp('e2e')
    data_root, work_dir = tmp / 'shapes', tmp / 'work'
    options = _data_options(data_root)
    _run(
        [
            'tools/train.py',
            DEMO,
            '--work-dir',
            str(work_dir),
            '--seed',
            '0',
            '--cfg-options',
            *options,
            'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1',
        ]
    )
    return data_root, work_dir, options


def test_train_generates_data_and_writes_checkpoints(trained):
    data_root, work_dir, _ = trained
    assert (data_root / 'annotations' / 'instances_train.json').is_file()
    assert (work_dir / 'epoch_1.pth').is_file()
    assert (work_dir / 'latest.pth').resolve() == (work_dir / 'epoch_1.pth').resolve()
    checkpoint = torch.load(work_dir / 'epoch_1.pth', weights_only=True)
    assert checkpoint['meta']['epoch'] == 1 and checkpoint['meta']['iter'] == 2
    assert checkpoint['meta']['dataset_meta']['classes'][0] == 'ellipse'


def test_resume_continues_from_last_checkpoint(trained):
    _, work_dir, options = trained
    before = torch.load(work_dir / 'epoch_1.pth', weights_only=True)['state_dict']
    result = _run(
        [
            'tools/train.py',
            DEMO,
            '--work_dir',
            str(work_dir),
            '--resume',
            '--cfg-options',
            *options,
            'train_cfg.max_epochs=2',
            'train_cfg.val_interval=2',
        ]
    )
    assert 'resumed epoch: 1, iter: 2' in result.stdout + result.stderr
    after = torch.load(work_dir / 'epoch_2.pth', weights_only=True)
    assert after['meta']['epoch'] == 2 and after['meta']['iter'] == 4
    assert (work_dir / 'latest.pth').resolve() == (work_dir / 'epoch_2.pth').resolve()
    name = 'bbox_head.polar_mask.weight'
    assert not torch.equal(before[name], after['state_dict'][name])


def test_resume_with_other_optimizer_groups_names_the_fix(trained):
    _, work_dir, options = trained
    checkpoint = work_dir / 'epoch_1.pth'
    error = _failing_train(
        work_dir / 'other_groups',
        options,
        'optim_wrapper.constructor=DefaultOptimWrapperConstructor',
        'train_cfg.max_epochs=2',
        flags=('--resume', str(checkpoint)),
    )[-2]
    assert f"'{checkpoint}'" in error and 'parameter groups' in error
    assert 'optim_wrapper.constructor=DefaultOptimWrapperConstructor' in error
    assert not (work_dir / 'other_groups' / 'epoch_2.pth').exists()


def test_diverging_training_stops_at_the_first_non_finite_loss(trained):
    data_root, work_dir, options = trained
    error = _failing_train(
        work_dir / 'diverged', options, 'optim_wrapper.optimizer.lr=1e30', 'train_cfg.max_epochs=1'
    )[-2]
    assert 'FloatingPointError: non-finite loss at iteration 2 (epoch 1): loss=' in error
    assert f"'{data_root}/train/" in error  # the images of the batch
    assert not list((work_dir / 'diverged').glob('*.pth'))


def test_test_writes_results_and_evaluates(trained):
    _, work_dir, options = trained
    out = work_dir / 'res.pkl'
    result = _run(
        [
            'tools/test.py',
            DEMO,
            str(work_dir / 'latest.pth'),
            '--work-dir',
            str(work_dir),
            '--out',
            str(out),
            '--eval',
            'segm',
            '--cfg-options',
            *options,
        ]
    )
    assert 'segm_mAP' in result.stdout + result.stderr
    with open(out, 'rb') as file:
        results = pickle.load(file)
    assert len(results) == 4
    assert {'img_id', 'bboxes', 'scores', 'labels'} <= set(results[0])


def test_test_time_augmentation_evaluates_the_merged_views(trained):
    _, work_dir, options = trained
    out = work_dir / 'tta.pkl'
    result = _run(
        [
            'tools/test.py',
            DEMO,
            str(work_dir / 'latest.pth'),
            '--work-dir',
            str(work_dir),
            '--tta',
            '--out',
            str(out),
            '--cfg-options',
            *options,
        ]
    )
    assert 'segm_mAP' in result.stdout + result.stderr
    with open(out, 'rb') as file:
        results = pickle.load(file)
    assert len(results) == 4
    for record in results:  # unflipped views' polygons lie in the 160x160 images
        assert len(record['scores']) <= 100
        if len(record['polygons']):
            assert record['polygons'].min() >= 0 and record['polygons'].max() <= 159


def test_test_time_augmentation_without_its_config_names_the_fix(trained):
    _, work_dir, options = trained
    result = _run(
        [
            'tools/test.py',
            DEMO,
            str(work_dir / 'latest.pth'),
            '--work-dir',
            str(work_dir),
            '--tta',
            '--cfg-options',
            *options,
            'tta_model=None',
        ],
        returncode=1,
    )
    assert '--tta needs tta_model in the config' in result.stderr


def test_bad_config_value_is_one_clear_line(trained):
    _, work_dir, options = trained
    lines = _failing_train(work_dir / 'bad', options, 'model.bbox_head.type=PolarMaskHeed')
    assert lines[-2].startswith(f'error: {DEMO}:') and 'PolarMaskHeed' in lines[-2]
    assert lines[-1].startswith('(full traceback: ')


def test_missing_data_root_is_one_clear_line(tmp_path):
    config = 'configs/polarmask/4gpu/polar_768_1x_r50.py'
    result = _run(
        [
            'tools/train.py',
            config,
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={tmp_path}/nowhere/',
            'model.backbone.init_cfg=None',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
        ],
        returncode=1,
        timeout=300,
    )
    assert 'nowhere' in result.stderr.strip().splitlines()[-2]

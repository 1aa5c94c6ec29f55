"""tools/analysis_tools/browse_dataset.py: positive points, their rays and the drawings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from polarmask.datasets.shapes_generator import make_shapes_dataset
from polarmask.registry import DATASETS, MODELS
from polarmask.structures.polar import ray_directions
from polarmask.utils import register_all_modules
from polarmask.visualization import draw_polar_targets, draw_rays

REPO = Path(__file__).resolve().parents[2]
CONFIG = 'configs/polarmask/demo/polar_shapes_r18.py'

spec = importlib.util.spec_from_file_location(
    'browse_dataset', REPO / 'tools/analysis_tools/browse_dataset.py'
)
browse_dataset = importlib.util.module_from_spec(spec)
spec.loader.exec_module(browse_dataset)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp('shapes') / 'shapes'
    make_shapes_dataset(root, num_train=3, num_val=1)
    return f'{root}/'


def test_browse_dataset_writes_one_drawing_per_sample(tmp_path, data_root):
    out = tmp_path / 'browse'
    browse_dataset.main(
        [CONFIG, '--output-dir', str(out), '--not-show', '--max-images', '2', '--scale', '2']
        + ['--cfg-options', f'train_dataloader.dataset.data_root={data_root}']
    )
    assert sorted(p.name for p in out.iterdir()) == ['000001.jpg.png', '000002.jpg.png']
    width, height = Config.fromfile(CONFIG).train_dataloader.dataset.pipeline[2].scale
    for path in out.iterdir():
        assert cv2.imread(str(path)).shape == (2 * height, 2 * width, 3)  # the input, scaled x2


def test_positive_targets_follow_the_training_targets(data_root):
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset.data_root = data_root
    head = MODELS.build(cfg.model.bbox_head)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    np.random.seed(0)  # RandomFlip
    for index in range(len(dataset) * 2):
        data_sample = dataset[index % len(dataset)]['data_samples']
        gt = data_sample.gt_instances
        points, polygons, instances = browse_dataset.positive_targets(head, data_sample, 32)
        assert len(points) > 0 and set(instances.tolist()) == set(range(len(gt.labels)))
        # Every positive lies in its gt's box, within the sampling square around its centre.
        boxes, centers = gt.bboxes[instances], gt.centers[instances]
        assert ((points > boxes[:, :2]) & (points < boxes[:, 2:])).all()
        assert ((points - centers).abs().amax(dim=1) < 1.5 * max(head.strides)).all()
        # Its polygon is its rays along the fixed directions, ending on its gt's contour.
        rays = polygons - points[:, None]
        lengths = rays.norm(dim=-1)  # (P, R)
        directions = ray_directions(head.num_rays)
        np.testing.assert_allclose(rays, lengths[..., None] * directions, atol=1e-3)
        # Rays with no contour point within +-3 degrees keep the 1e-6 target; the others end on it.
        for polygon, ray_lengths, instance in zip(
            polygons, lengths, instances.tolist(), strict=True
        ):
            gaps = torch.cdist(polygon, gt.contours[instance]).amin(dim=1)  # (R,)
            assert gaps[ray_lengths > 1e-3].median() < 1.0


def test_draw_rays_draws_lines_from_the_point_to_the_ends():
    img = np.zeros((20, 40, 3), np.uint8)
    drawn = draw_rays(img, np.array([[5.0, 10.0]]), np.array([[[30.0, 10.0]]]), [(0, 0, 255)])
    assert not img.any()
    assert (drawn[10, 6:30, 2] > 0).all() and not drawn[:, :, :2].any()
    assert not drawn[:5].any() and not drawn[15:].any()


def test_draw_polar_targets_colours_each_instance():
    img = np.full((64, 64, 3), 128, np.uint8)
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], np.float32)
    contours = [square, square + 30]
    centers = np.array([[20, 20], [50, 50]], np.float32)
    points = np.array([[20, 20], [50, 50]], np.float32)
    polygons = points[:, None] + 8 * ray_directions(4).numpy()
    drawn = draw_polar_targets(
        img, contours, centers, [0, 0], points, polygons, [0, 1], class_names=['box']
    )
    first, second = drawn[20, 20], drawn[50, 50]
    assert (first != second).any()  # one colour per instance, though both are class 0
    assert (drawn[20, 24] != drawn[2, 2]).any()  # a ray over the faded background


def test_browse_dataset_draws_and_names_instances_without_positive_points(
    tmp_path, data_root, capsys
):
    out = tmp_path / 'browse'
    # Regress ranges that no shape fits: no point is positive for anything.
    browse_dataset.main(
        [CONFIG, '--output-dir', str(out), '--not-show', '--max-images', '1', '--cfg-options']
        + [f'train_dataloader.dataset.data_root={data_root}']
        + ['model.bbox_head.regress_ranges=((-1,0),(0,1))']
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert '0 positive points; no positive point, nothing learns: #0 ' in line
    assert cv2.imread(str(out / '000001.jpg.png')) is not None


def test_draw_rays_without_points_returns_the_image():
    img = np.full((20, 40, 3), 7, np.uint8)
    drawn = draw_rays(img, np.zeros((0, 2)), np.zeros((0, 36, 2)), [])
    assert drawn is not img and (drawn == img).all()


def test_browse_dataset_without_a_display_writes_files_or_says_why(
    tmp_path, data_root, capsys, monkeypatch
):
    def abort(*args, **kwargs):
        raise AssertionError('imshow without a display aborts the process (Qt, exit 134)')

    monkeypatch.setattr(mmcv, 'imshow', abort)
    monkeypatch.setattr(sys, 'platform', 'linux')
    for name in ('DISPLAY', 'WAYLAND_DISPLAY', 'QT_QPA_PLATFORM'):
        monkeypatch.delenv(name, raising=False)
    options = ['--cfg-options', f'train_dataloader.dataset.data_root={data_root}']
    out = tmp_path / 'browse'
    browse_dataset.main([CONFIG, '--output-dir', str(out), '--max-images', '1', *options])
    assert 'not showing the drawings, only writing them to' in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ['000001.jpg.png']
    with pytest.raises(SystemExit):
        browse_dataset.main([CONFIG, '--max-images', '1', *options])
    error = next(line for line in capsys.readouterr().err.splitlines() if 'error:' in line)
    assert 'cannot show the drawings' in error and '--output-dir DIR --not-show' in error

"""Drawing functions, PolarVisualizer and DetVisualizationHook (``--show-dir``)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import torch
from mmengine.structures import InstanceData

from polarmask.registry import HOOKS, VISUALIZERS
from polarmask.structures import DetDataSample
from polarmask.structures.mask import polygons_to_masks
from polarmask.visualization import (
    DetVisualizationHook,
    PolarVisualizer,
    draw_det_instances,
    draw_gt_instances,
    get_palette,
    tag_layout,
)


def ellipse(cx: float, cy: float, a: float, b: float, num_rays: int = 36) -> np.ndarray:
    theta = np.arange(num_rays) * 2 * math.pi / num_rays
    return np.stack((cx + a * np.sin(theta), cy + b * np.cos(theta)), axis=-1).astype(np.float32)


POLYGONS = np.stack((ellipse(30, 30, 15, 12), ellipse(90, 50, 20, 18)))


def prediction(scores=(0.9, 0.1)) -> InstanceData:
    return InstanceData(
        polygons=torch.from_numpy(POLYGONS),
        labels=torch.tensor([0, 1]),
        scores=torch.tensor(scores, dtype=torch.float32),
        bboxes=torch.from_numpy(np.concatenate((POLYGONS.min(1), POLYGONS.max(1)), axis=1)),
    )


def test_palette_is_distinct_and_deterministic():
    palette = get_palette(80)
    assert palette == get_palette(80) and len(set(palette)) == 80


def test_draw_det_instances_fills_inside_only_and_applies_threshold():
    img = np.zeros((80, 128, 3), np.uint8)
    pred = prediction()
    palette = [(0, 0, 200), (0, 200, 0)]
    drawn = draw_det_instances(
        img,
        pred.polygons,
        pred.labels,
        pred.scores,
        palette=palette,
        class_names=('a', 'b'),
        score_thr=0.3,
        alpha=0.5,
    )
    assert not img.any() and drawn.shape == img.shape
    inside = polygons_to_masks(POLYGONS, (80, 128)).astype(bool)
    # the interior of the kept instance (inside its outline) is tinted with its colour at 50%
    core = cv2.erode(inside[0].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert core.sum() > 200 and (np.abs(drawn[core].astype(int) - [0, 0, 100]) <= 1).all()
    # the low-score instance is not drawn at all, and nothing far outside is touched
    assert not drawn[inside[1]].any()
    far = ~cv2.dilate(inside[0].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    far[:20, 10:80] = False  # the class tag sits above the polygon
    assert not drawn[far].any() and drawn[:20, 10:80].any()


def test_draw_handles_empty_predictions_and_gt():
    img = np.full((20, 30, 3), 50, np.uint8)
    empty = draw_det_instances(img, np.zeros((0, 36, 2)), np.zeros(0), np.zeros(0))
    np.testing.assert_array_equal(empty, img)
    contour = ellipse(15, 10, 8, 6)
    gt = draw_gt_instances(img, [contour], [0], centers=[[15, 10]], class_names=('thing',))
    assert (gt != img).any() and tuple(gt[10, 15]) != (50, 50, 50)


def test_visualizer_writes_side_by_side_panels(tmp_path):
    visualizer = PolarVisualizer(name='test_polar_visualizer')
    visualizer.dataset_meta = dict(classes=('a', 'b'))
    sample = DetDataSample()
    sample.pred_instances = prediction()
    sample.gt_instances = InstanceData(
        contours=[torch.from_numpy(p) for p in POLYGONS],
        labels=torch.tensor([0, 1]),
        centers=torch.tensor([[30.0, 30.0], [90.0, 50.0]]),
    )
    out_file = tmp_path / 'vis.png'
    visualizer.add_datasample('x', np.zeros((80, 128, 3), np.uint8), sample, out_file=str(out_file))
    written = cv2.imread(str(out_file))
    assert written.shape == (80, 256, 3) and written[:, :128].any() and written[:, 128:].any()
    assert VISUALIZERS.get('PolarVisualizer') is PolarVisualizer


def test_hook_writes_png_per_test_image(tmp_path):
    image_path = tmp_path / 'img_001.jpg'
    cv2.imwrite(str(image_path), np.full((160, 256, 3), 30, np.uint8))
    sample = DetDataSample(metainfo=dict(img_path=str(image_path), ori_shape=(160, 256)))
    sample.pred_instances = prediction(scores=(0.9, 0.8))
    runner = SimpleNamespace(
        work_dir=str(tmp_path / 'work'),
        timestamp='20240101_000000',
        iter=0,
        visualizer=SimpleNamespace(dataset_meta=dict(classes=('a', 'b')), add_image=None),
    )
    hook = HOOKS.build(dict(type='DetVisualizationHook', draw=True, test_out_dir='vis'))
    assert isinstance(hook, DetVisualizationHook)
    hook.after_test_iter(runner, 0, {}, [sample])
    out_file = tmp_path / 'work' / '20240101_000000' / 'vis' / 'img_001.jpg.png'
    drawn = cv2.imread(str(out_file))
    assert drawn.shape == (160, 256, 3)
    inside = polygons_to_masks(POLYGONS, (160, 256)).astype(bool)
    assert (np.abs(drawn[inside[1]].astype(int) - 30).sum(-1) > 20).mean() > 0.9
    assert (np.abs(drawn[~inside.any(0)].astype(int) - 30).sum(-1) <= 6).mean() > 0.9

    DetVisualizationHook(draw=False, test_out_dir='off').after_test_iter(runner, 0, {}, [sample])
    assert not (tmp_path / 'work' / '20240101_000000' / 'off').exists()

    png_path = tmp_path / 'img_001.png'  # the same stem
    cv2.imwrite(str(png_path), np.full((160, 256, 3), 90, np.uint8))
    same_stem = sample.clone()
    same_stem.set_metainfo(dict(img_path=str(png_path)))
    hook.after_test_iter(runner, 1, {}, [same_stem])
    assert (cv2.imread(str(out_file)) == drawn).all()
    assert cv2.imread(str(out_file.with_name('img_001.png.png'))).shape == (160, 256, 3)


def test_hook_sends_val_images_to_backends_at_interval(tmp_path):
    image_path = tmp_path / 'v.png'
    cv2.imwrite(str(image_path), np.zeros((80, 128, 3), np.uint8))
    sample = DetDataSample(metainfo=dict(img_path=str(image_path)))
    sample.pred_instances = prediction()
    calls = []
    runner = SimpleNamespace(
        iter=0,
        visualizer=SimpleNamespace(
            dataset_meta=None, add_image=lambda name, img, step: calls.append((name, step))
        ),
    )
    hook = DetVisualizationHook(draw=True, interval=2)
    for batch_idx in range(4):
        hook.after_val_iter(runner, batch_idx, {}, [sample])
    assert calls == [('val_v.png', 0), ('val_v.png', 2)]


def test_tags_on_a_small_image_are_small_and_do_not_overlap():
    # Three touching shapes of a 160 x 160 image (the demo's size), as the demo predicts them.
    boxes = np.array([[40, 40, 70, 70], [60, 45, 90, 75], [45, 65, 75, 95]], np.float32)
    texts = ['triangle 0.87', 'hexagon 0.81', 'rectangle 0.66']
    corners, sizes, scales = tag_layout(boxes, texts, (160, 160, 3))
    # 0.53-0.61 of the width before; OpenCV 4.8's Hershey glyphs are 30% wider than 5.0's (up to
    # 0.45 of the width here, 0.40 with 5.0).
    assert (scales == 0.3).all() and (sizes[:, 0] < 0.5 * 160).all()
    tags = np.concatenate((corners, corners + sizes), axis=1)  # (3, 4) x1y1x2y2, exclusive
    assert (tags[:, :2] >= 0).all() and (tags[:, 2:] <= 160).all()
    for first in range(3):
        for second in range(first + 1, 3):
            low = np.maximum(tags[first, :2], tags[second, :2])
            high = np.minimum(tags[first, 2:], tags[second, 2:])
            assert (high <= low).any(), (tags[first], tags[second])


def test_tag_font_grows_with_the_instance_and_the_image():
    boxes = np.array([[10, 10, 30, 30], [100, 100, 150, 150], [200, 200, 700, 700]], np.float32)
    _, _, scales = tag_layout(boxes, ['a', 'b', 'c'], (800, 800))
    assert scales[0] < scales[1] < scales[2] and scales[2] == 0.6
    _, _, scales = tag_layout(boxes[2:], ['c'], (160, 800))
    assert scales[0] == 0.3  # a big instance of a small image

"""Sliced inference: tiles, the cut-instance rule and the merge, on a large generated image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from polarmask.apis import (
    DetectionResult,
    PolarMaskInferencer,
    inference_detector,
    inference_sliced,
    sliced,
)
from polarmask.apis.sliced import merge_tile_results, slice_windows, uncut_detections
from polarmask.datasets.shapes_generator import SHAPE_CATEGORIES, SHAPES_CLASSES, render_image
from polarmask.structures.mask import polygons_to_rles
from tests.test_apis.demo_model import CONFIG

NMS_CFG = dict(iou_threshold=0.5, offset=1)
LABELS = {category['id']: label for label, category in enumerate(SHAPE_CATEGORIES)}


def shapes_mosaic(rows: int, cols: int, side: int, seed: int) -> tuple[np.ndarray, list]:
    """A large image made of rows x cols shapes-dataset images, and its (label, mask) pairs."""
    rng = np.random.default_rng(seed)
    big = np.zeros((rows * side, cols * side, 3), dtype=np.uint8)
    instances = []
    for row in range(rows):
        for col in range(cols):
            img, shapes = render_image(rng, side, side, num_objects=(3, 6))
            big[row * side : (row + 1) * side, col * side : (col + 1) * side] = img
            for category_id, mask in shapes:
                full = np.zeros(big.shape[:2], dtype=bool)
                full[row * side : (row + 1) * side, col * side : (col + 1) * side] = mask
                instances.append((LABELS[category_id], full))
    return big, instances


def mask_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)


def box_polygon(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float32)


def oracle_tile_result(instances: list, window: np.ndarray, rng) -> DetectionResult:
    """A perfect detector on one tile: the visible part of every instance, in tile pixels."""
    x0, y0, x1, y1 = window.tolist()
    boxes, labels = [], []
    for label, mask in instances:
        crop = mask[y0:y1, x0:x1]
        if crop.any():
            boxes.append(mask_box(crop))
            labels.append(label)
    boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    polygons = np.array([box_polygon(b) for b in boxes], dtype=np.float32).reshape(-1, 4, 2)
    return DetectionResult(
        bboxes=boxes,
        scores=rng.uniform(0.3, 1.0, len(boxes)).astype(np.float32),
        labels=np.array(labels, dtype=np.int64),
        polygons=polygons,
        masks=polygons_to_rles(polygons, (y1 - y0, x1 - x0)),
        classes=SHAPES_CLASSES,
        ori_shape=(y1 - y0, x1 - x0),
    )


def test_windows_cover_the_image_with_full_tiles_and_the_given_overlap():
    windows = slice_windows((330, 500), (160, 160), (40, 40))
    assert windows[:, 0].tolist()[:4] == [0, 120, 240, 340]  # the last moved back to end at 500
    assert sorted(set(windows[:, 1].tolist())) == [0, 120, 170]
    assert (windows[:, 2] - windows[:, 0] == 160).all() and (
        windows[:, 3] - windows[:, 1] == 160
    ).all()
    covered = np.zeros((330, 500), dtype=bool)
    for x0, y0, x1, y1 in windows.tolist():
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    # Smaller than a patch in one direction: one tile of the image's extent there.
    assert slice_windows((100, 300), (160, 160), (40, 40)).tolist() == [
        [0, 0, 160, 100],
        [120, 0, 280, 100],
        [140, 0, 300, 100],
    ]
    with pytest.raises(ValueError, match='every overlap in'):
        slice_windows((100, 100), (32, 32), (32, 0))


def test_only_edges_inside_the_image_cut_detections():
    boxes = np.array([[0, 50, 20, 70], [50, 50, 159, 70], [50, 50, 156, 70], [3, 3, 30, 30]])
    # A tile at the image's left and top border, with its right and bottom edges inside.
    first = uncut_detections(boxes, np.array([0, 0, 160, 160]), (400, 400), border_margin=2)
    assert first.tolist() == [True, False, True, True]
    # Its right neighbour: the left edge lies inside the image, the right one is the border.
    right = uncut_detections(boxes, np.array([240, 0, 400, 160]), (400, 400), border_margin=2)
    assert right.tolist() == [False, True, True, True]


@pytest.mark.parametrize('seed', [0, 1])
def test_a_perfect_tile_detector_gives_every_instance_once_and_whole(seed):
    side, patch, overlap, margin = 160, (160, 160), (80, 80), 2
    big, instances = shapes_mosaic(2, 3, side, seed)
    windows = slice_windows(big.shape[:2], patch, overlap)
    rng = np.random.default_rng(seed)
    results = [oracle_tile_result(instances, window, rng) for window in windows]
    merged = merge_tile_results(results, windows, big.shape[:2], NMS_CFG, border_margin=margin)

    full_boxes = np.array([mask_box(mask) for _, mask in instances])
    sizes = (full_boxes[:, 2:] - full_boxes[:, :2] + 1).max(axis=1)
    limit = overlap[0] - 2 * margin - 1
    assert (sizes <= limit).sum() >= 15  # the rule's guarantee is exercised
    # Every output is one whole instance (no cut part, no duplicate), of the right class.
    matched = []
    for box, label, polygon in zip(merged.bboxes, merged.labels, merged.polygons, strict=True):
        equal = np.flatnonzero((full_boxes == box).all(axis=1))
        assert len(equal) == 1, box
        assert instances[equal[0]][0] == label
        np.testing.assert_array_equal(polygon, box_polygon(box))  # shifted like the boxes
        matched.append(int(equal[0]))
    assert len(set(matched)) == len(matched)
    # Every instance within the guarantee is found.
    assert set(np.flatnonzero(sizes <= limit).tolist()) <= set(matched)
    assert np.all(np.diff(merged.scores) <= 0)
    assert merged.ori_shape == big.shape[:2]
    decoded = mask_utils.decode(merged.masks)
    assert decoded.shape == (*big.shape[:2], len(merged))
    for index, box in enumerate(merged.bboxes.astype(int)):
        x1, y1, x2, y2 = box
        assert decoded[y1 : y2 + 1, x1 : x2 + 1, index].all()  # the box polygon, on the big image
        assert decoded[..., index].sum() == (x2 - x1 + 1) * (y2 - y1 + 1)


def test_an_instance_larger_than_the_overlap_cut_in_every_tile_is_dropped():
    mask = np.zeros((200, 320), dtype=bool)
    mask[40:120, 100:220] = True  # 120 px wide: cut by the inner edges of both tiles
    windows = slice_windows(mask.shape, (200, 200), (80, 80))
    assert len(windows) == 2
    rng = np.random.default_rng(0)
    results = [oracle_tile_result([(1, mask)], window, rng) for window in windows]
    assert all(len(result) == 1 for result in results)
    assert len(merge_tile_results(results, windows, mask.shape, NMS_CFG)) == 0


@pytest.fixture(scope='module')
def sliced_run(model: torch.nn.Module) -> tuple[np.ndarray, DetectionResult, list]:
    """A 280 x 280 image of shapes run as 2 x 2 tiles, with the model's calls recorded."""
    big = shapes_mosaic(2, 2, 160, seed=2)[0][:280, :280]
    calls = []

    def recording(model, tiles):
        calls.append((tiles, inference_detector(model, tiles)))
        return calls[-1][1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sliced, 'inference_detector', recording)
        result = inference_sliced(model, big, patch_size=160, overlap_ratio=0.25, batch_size=3)
    return big, result, calls


def test_sliced_inference_runs_the_tiles_and_merges_them(sliced_run):
    big, result, calls = sliced_run
    windows = slice_windows(big.shape[:2], (160, 160), (40, 40))
    assert windows.tolist() == [[x, y, x + 160, y + 160] for y in (0, 120) for x in (0, 120)]
    assert [len(tiles) for tiles, _ in calls] == [3, 1]  # batch_size tiles per forward pass
    tiles = [tile for batch, _ in calls for tile in batch]
    for tile, (x0, y0, x1, y1) in zip(tiles, windows.tolist(), strict=True):
        np.testing.assert_array_equal(tile, big[y0:y1, x0:x1])
    tile_results = [r for _, batch_results in calls for r in batch_results]
    expected = merge_tile_results(tile_results, windows, big.shape[:2], NMS_CFG)
    assert 0 < len(result) == len(expected)
    np.testing.assert_array_equal(result.bboxes, expected.bboxes)
    np.testing.assert_array_equal(result.polygons, expected.polygons)
    assert result.masks == expected.masks and result.ori_shape == (280, 280)
    assert result.bboxes[:, 2].max() > 160 and result.bboxes[:, 3].max() > 160  # later tiles
    assert (result.polygons >= 0).all() and (result.polygons <= 279).all()


def test_one_tile_is_plain_inference_and_the_inferencer_slices(model, checkpoint, sliced_run):
    img = shapes_mosaic(1, 1, 160, seed=3)[0]
    whole = inference_detector(model, img)
    single = inference_sliced(model, img, patch_size=160)
    np.testing.assert_array_equal(single.bboxes, whole.bboxes)
    np.testing.assert_array_equal(single.scores, whole.scores)
    assert single.masks == whole.masks

    big, expected, _ = sliced_run
    inferencer = PolarMaskInferencer(CONFIG, checkpoint, show_progress=False)
    result = inferencer([big], patch_size=(160, 160), patch_overlap_ratio=0.25)
    np.testing.assert_array_equal(result['predictions'][0].bboxes, expected.bboxes)
    with pytest.raises(ValueError, match=r'overlap_ratio must be in \[0, 1\)'):
        inference_sliced(model, big, overlap_ratio=1.0)

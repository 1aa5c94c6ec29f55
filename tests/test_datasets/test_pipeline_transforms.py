"""Transforms keep image, masks, boxes and contours aligned (the images show their instances)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from polarmask.datasets import CocoInsSegDataset
from polarmask.datasets.transforms import (
    LoadAnnotations,
    LoadImageFromFile,
    PackPolarInputs,
    Pad,
    PolarContours,
    RandomFlip,
    RandomResize,
    Resize,
    resize_masks,
)
from polarmask.registry import TRANSFORMS
from polarmask.structures import DetDataSample
from polarmask.utils import register_all_modules


def load(coco_root, index: int = 0) -> dict:
    dataset = CocoInsSegDataset(
        ann_file='annotations/ann.json', data_root=str(coco_root), data_prefix=dict(img='images/')
    )
    results = LoadImageFromFile()(dataset.get_data_info(index))
    return LoadAnnotations(with_bbox=True, with_label=True, with_mask=True)(results)


def colour_mask(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return (np.abs(img.astype(np.int32) - np.array(colour)).sum(axis=-1) < 120).astype(np.uint8)


def mask_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def assert_aligned(results: dict, colours: list, box_tol: float) -> None:
    """Masks match the drawn pixels, boxes match the masks, contours lie on the masks."""
    img, masks = results['img'], results['gt_masks']
    height, width = results['img_shape']
    assert masks.shape[1:] == img.shape[:2]
    for index, mask in enumerate(masks):
        assert iou(mask.astype(bool), colour_mask(img, colours[index]).astype(bool)) > 0.85
        np.testing.assert_allclose(mask_box(mask), results['gt_bboxes'][index], atol=box_tol)
        assert (results['gt_bboxes'][index][0::2] <= width - 1).all()
        assert (results['gt_bboxes'][index][1::2] <= height - 1).all()
        if 'gt_contours' in results and not results['gt_ignore_flags'][index]:
            contour = results['gt_contours'][index].astype(np.int64)
            assert mask[contour[:, 1], contour[:, 0]].all()
            np.testing.assert_array_equal(
                np.concatenate((contour.min(0), contour.max(0))), mask_box(mask)
            )
            cx, cy = results['gt_centers'][index].astype(np.int64)
            assert mask[cy, cx] == 1


def test_load_annotations_match_pycocotools(coco_root, coco_tools):
    results = load(coco_root)
    colours = coco_tools.colors
    for index, mask in enumerate(results['gt_masks']):
        drawn = colour_mask(results['img'], colours[index])
        assert iou(mask.astype(bool), drawn.astype(bool)) > 0.9
    np.testing.assert_array_equal(results['gt_bboxes'][1], [10, 10, 49, 39])
    assert results['gt_bboxes'].dtype == np.float32
    assert results['gt_bboxes_labels'].dtype == np.int64


@pytest.mark.parametrize('keep_ratio', [False, True])
def test_resize_keeps_alignment(coco_root, coco_tools, keep_ratio):
    results = Resize(scale=(320, 200), keep_ratio=keep_ratio)(load(coco_root))
    expected = (200, 267) if keep_ratio else (200, 320)  # min(320/128, 200/96) = 2.083
    assert results['img_shape'] == expected and results['img'].shape[:2] == expected
    w_scale, h_scale = results['scale_factor']
    assert (w_scale, h_scale) == pytest.approx((expected[1] / 128, expected[0] / 96))
    np.testing.assert_allclose(
        results['gt_bboxes'][1],
        [10 * w_scale, 10 * h_scale, 49 * w_scale, 39 * h_scale],
        rtol=1e-6,
    )
    assert_aligned(results, coco_tools.colors, box_tol=max(w_scale, h_scale) + 1)


def test_flip_uses_plus_one_convention(coco_root, coco_tools):
    results = load(coco_root)
    masks = results['gt_masks'].copy()
    boxes = results['gt_bboxes'].copy()
    flipped = RandomFlip(prob=1.0)(results)
    assert flipped['flip'] and flipped['flip_direction'] == 'horizontal'
    np.testing.assert_array_equal(flipped['gt_bboxes'][1], [128 - 49 - 1, 10, 128 - 10 - 1, 39])
    np.testing.assert_array_equal(flipped['gt_masks'], masks[:, :, ::-1])
    for index, mask in enumerate(flipped['gt_masks']):
        # a box that is exactly the mask's stays exactly the flipped mask's box
        if np.array_equal(mask_box(masks[index]), boxes[index]):
            np.testing.assert_array_equal(mask_box(mask), flipped['gt_bboxes'][index])
    assert_aligned(flipped, coco_tools.colors, box_tol=1)
    vertical = RandomFlip(prob=1.0, direction='vertical')(load(coco_root))
    np.testing.assert_array_equal(vertical['gt_bboxes'][1], [10, 96 - 39 - 1, 49, 96 - 10 - 1])
    unflipped = RandomFlip(prob=0.0)(load(coco_root))
    assert unflipped['flip'] is False and unflipped['flip_direction'] is None


def test_pad_keeps_img_shape_and_zero_fills(coco_root, coco_tools):
    results = Pad(size_divisor=32)(Resize(scale=(150, 100))(load(coco_root)))
    assert results['pad_shape'] == (128, 160) and results['img_shape'] == (100, 150)
    assert results['img'].shape == (128, 160, 3) and results['gt_masks'].shape[1:] == (128, 160)
    assert not results['img'][100:].any() and not results['img'][:, 150:].any()
    assert not results['gt_masks'][:, 100:].any() and not results['gt_masks'][:, :, 150:].any()
    assert_aligned(results, coco_tools.colors, box_tol=3)
    fixed = Pad(size=(200, 100), pad_val=7)(load(coco_root))
    assert fixed['pad_shape'] == (100, 200) and (fixed['img'][96:] == 7).all()
    with pytest.raises(ValueError, match='larger than size'):
        Pad(size=(64, 64))(load(coco_root))
    with pytest.raises(ValueError, match='exactly one'):
        Pad()


def test_full_training_chain_aligned_with_contours(coco_root, coco_tools):
    results = load(coco_root)
    for transform in (
        Resize(scale=(256, 160)),
        RandomFlip(prob=1.0),
        Pad(size_divisor=32),
        PolarContours(keep_masks=True),
    ):
        results = transform(results)
    assert results['pad_shape'] == (160, 256)
    assert len(results['gt_contours']) == len(results['gt_bboxes']) == 4
    assert results['gt_contours'][0].shape == (0, 2)  # the crowd gets no contour
    assert results['gt_centers'].shape == (4, 2) and results['gt_centers'].dtype == np.float32
    assert_aligned(results, coco_tools.colors, box_tol=3)
    with pytest.raises(ValueError, match='after PolarContours'):
        Resize(scale=(64, 64))(results)


def test_polar_contours_drops_vanished_instances(coco_root):
    results = load(coco_root)
    results['gt_masks'][2] = 0  # the blob vanished (e.g. after a strong downscale)
    contours = PolarContours()
    out = contours(results)
    assert 'gt_masks' not in out and contours.num_dropped == 1
    assert out['gt_bboxes_labels'].tolist() == [2, 0, 2]
    assert out['gt_ignore_flags'].tolist() == [True, False, False]
    assert len(out['gt_contours']) == len(out['gt_bboxes']) == len(out['gt_centers']) == 3
    with pytest.raises(KeyError, match='LoadAnnotations\\(with_mask=True\\)'):
        PolarContours()(dict(gt_bboxes=np.zeros((0, 4), np.float32)))


def test_random_resize_range_mode_warps_long_edge_fixed():
    transform = RandomResize(scale=[(1333, 640), (1333, 800)], keep_ratio=False)
    np.random.seed(0)
    heights = set()
    for _ in range(20):
        results = transform(dict(img=np.zeros((300, 200, 3), np.uint8)))
        height, width = results['img_shape']
        assert width == 1333 and 640 <= height <= 800  # portrait images are warped too
        heights.add(height)
    assert len(heights) > 10
    with pytest.raises(ValueError, match='two'):
        RandomResize(scale=[(1333, 800)])


def test_resize_ratio_range_and_scale_factor_composition():
    np.random.seed(1)
    results = Resize(scale=(100, 50), ratio_range=(0.5, 1.5))(
        dict(img=np.zeros((50, 100, 3), np.uint8))
    )
    height, width = results['img_shape']
    assert 50 <= width <= 150 and width != 100 and abs(width - 2 * height) <= 1
    twice = Resize(scale=(50, 25))(
        Resize(scale=(200, 100))(dict(img=np.zeros((50, 100, 3), np.uint8)))
    )
    assert twice['scale_factor'] == pytest.approx((0.5, 0.5))


def test_resize_masks_many_channels_matches_one_by_one():
    rng = np.random.default_rng(0)
    masks = (rng.random((600, 13, 17)) > 0.5).astype(np.uint8)
    resized = resize_masks(masks, (29, 11))
    assert resized.shape == (600, 11, 29)
    for index in (0, 127, 128, 599):  # no channel-count limit
        expected = cv2.resize(masks[index], (29, 11), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(resized[index], expected)
    assert resize_masks(masks[:1], (29, 11)).shape == (1, 11, 29)
    assert resize_masks(masks[:0], (29, 11)).shape == (0, 11, 29)


def test_pack_polar_inputs(coco_root):
    results = load(coco_root)
    for transform in (Resize(scale=(256, 160)), PolarContours()):
        results = transform(results)
    packed = PackPolarInputs()(results)
    inputs, sample = packed['inputs'], packed['data_samples']
    assert isinstance(sample, DetDataSample)
    assert inputs.shape == (3, 160, 256) and inputs.dtype == torch.uint8
    torch.testing.assert_close(inputs[:, 5, 7], torch.from_numpy(results['img'][5, 7]))
    gt = sample.gt_instances
    assert gt.bboxes.dtype == torch.float32 and gt.bboxes.shape == (3, 4)
    assert gt.labels.tolist() == [0, 1, 2] and gt.labels.dtype == torch.int64
    assert len(gt.contours) == 3 and gt.contours[0].dtype == torch.float32
    assert gt.centers.shape == (3, 2)
    assert sample.ignored_instances.bboxes.shape == (1, 4)
    assert sample.img_id == 11 and sample.ori_shape == (96, 128)
    assert sample.pad_shape == sample.img_shape == (160, 256)
    assert sample.flip is False and sample.flip_direction is None
    assert sample.scale_factor == pytest.approx((2.0, 160 / 96))


def test_pack_test_pipeline_without_annotations(coco_root):
    dataset = CocoInsSegDataset(
        ann_file='annotations/ann.json',
        data_root=str(coco_root),
        data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(64, 48)),
            dict(type='PackPolarInputs'),
        ],
    )
    sample = dataset[1]['data_samples']
    assert len(sample.gt_instances) == 0 and sample.img_shape == (48, 64)
    assert sample.ori_shape == (80, 60) and sample.scale_factor == (64 / 60, 48 / 80)


def test_dataset_builds_pipeline_from_configs(coco_root):
    dataset = CocoInsSegDataset(
        ann_file='annotations/ann.json',
        data_root=str(coco_root),
        data_prefix=dict(img='images/'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='RandomResize', scale=[(256, 128), (256, 160)]),
            dict(type='RandomFlip', prob=0.5),
            dict(type='Pad', size_divisor=32),
            dict(type='PolarContours'),
            dict(type='PackPolarInputs'),
        ],
    )
    for index in range(len(dataset)):
        out = dataset[index]
        sample = out['data_samples']
        assert out['inputs'].shape[1:] == sample.pad_shape
        assert sample.pad_shape[0] % 32 == 0 and sample.pad_shape[1] == 256
        assert len(sample.gt_instances.contours) == len(sample.gt_instances.bboxes) > 0


def test_random_choice_resize_by_name_resizes_masks_with_the_image(coco_root, coco_tools):
    register_all_modules()
    transform = TRANSFORMS.build(
        dict(type='RandomChoiceResize', scales=[(256, 160), 200], keep_ratio=False)
    )
    np.random.seed(0)
    sizes = set()
    for _ in range(8):
        results = transform(load(coco_root))
        sizes.add(results['img_shape'])
        assert_aligned(PolarContours(keep_masks=True)(results), coco_tools.colors, box_tol=3)
    assert sizes == {(160, 256), (200, 200)}


def test_resize_int_scale_is_a_square(coco_root):
    results = Resize(scale=100)(load(coco_root))
    assert results['img_shape'] == (100, 100) and results['gt_masks'].shape[1:] == (100, 100)
    assert Resize(scale=256, keep_ratio=True)(load(coco_root))['img_shape'] == (192, 256)


class _DeclaredAligned:
    keeps_annotations_aligned = True

    def __call__(self, results: dict) -> dict:
        return results


@pytest.mark.parametrize(
    ('transform', 'refused'),
    [
        (dict(type='CenterCrop', crop_size=32), 'mmcv.transforms.processing.CenterCrop'),
        (dict(type='mmcv.Resize', scale=(64, 48)), 'mmcv.transforms.processing.Resize'),
        (
            dict(type='RandomApply', transforms=[dict(type='CenterCrop', crop_size=32)]),
            'mmcv.transforms.processing.CenterCrop',
        ),
        (dict(type='RandomChoiceResize', scales=[(64, 48)]), None),
        (dict(type='RandomGrayscale'), None),
        (_DeclaredAligned(), None),
    ],
)
def test_pipeline_refuses_transforms_that_leave_masks_behind(coco_root, transform, refused):
    register_all_modules()
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        transform,
        dict(type='PolarContours'),
        dict(type='PackPolarInputs'),
    ]
    options = dict(ann_file='annotations/ann.json', data_root=str(coco_root), pipeline=pipeline)
    options['data_prefix'] = dict(img='images/')
    if refused is None:
        CocoInsSegDataset(**options)
        return
    with pytest.raises(ValueError, match=f"CocoInsSegDataset 'annotations/ann.json'.*{refused}"):
        CocoInsSegDataset(**options)

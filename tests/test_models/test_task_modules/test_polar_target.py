"""PolarTarget: point assignment and polar targets against the per-point loop of the original."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from polarmask.models.task_modules import PolarTarget
from polarmask.registry import TASK_UTILS
from polarmask.structures.polar import MISSING_RAY, featmap_sizes_for, mask_contour
from tests.oracles.polar_target_loop import polar_targets_loop
from tests.oracles.random_instances import random_instances

STRIDES = (8, 16, 32, 64, 128)
RANGES = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, 1e8))
NUM_CLASSES = 80


def build(num_rays: int = 36) -> PolarTarget:
    return TASK_UTILS.build(
        dict(
            type='PolarTarget',
            strides=STRIDES,
            regress_ranges=RANGES,
            center_sample_radius=1.5,
            num_rays=num_rays,
        )
    )


def sizes_for(pad_shape: tuple[int, int]) -> list[tuple[int, int]]:
    return featmap_sizes_for(pad_shape, list(STRIDES))


def instances_of(masks: np.ndarray, bboxes: np.ndarray, labels: np.ndarray) -> InstanceData:
    """What PolarContours + PackPolarInputs hand to the head."""
    found = [mask_contour(mask) for mask in masks]
    return InstanceData(
        bboxes=torch.as_tensor(bboxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.as_tensor(labels, dtype=torch.long),
        contours=[torch.from_numpy(contour) for contour, _ in found],
        centers=torch.tensor(np.array([center for _, center in found]).reshape(-1, 2)),
    )


def square_instances(boxes, centers, labels) -> InstanceData:
    """Hand-made instances: given boxes and centres, a small square contour each."""
    contours = [
        torch.tensor([[x - 2, y - 2], [x + 2, y - 2], [x + 2, y + 2], [x - 2, y + 2]])
        for x, y in centers
    ]
    return InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32),
        labels=torch.tensor(labels),
        contours=[c.float() for c in contours],
        centers=torch.tensor(centers, dtype=torch.float32),
    )


def labels_at(labels: torch.Tensor, pad_shape, level: int, xy: tuple[int, int]) -> int:
    """Label of the point (x, y) of a level in a (P,) label vector."""
    sizes = featmap_sizes_for(pad_shape, list(STRIDES))
    start = sum(h * w for h, w in sizes[:level])
    stride = STRIDES[level]
    col, row = (xy[0] - stride // 2) // stride, (xy[1] - stride // 2) // stride
    return int(labels[start + row * sizes[level][1] + col])


def level0_positives(labels: torch.Tensor, pad_shape, label: int) -> set[tuple[int, int]]:
    """Level-0 points (x, y) < 64 labelled ``label``."""
    return {
        (x, y)
        for x in range(4, 64, 8)
        for y in range(4, 64, 8)
        if labels_at(labels, pad_shape, 0, (x, y)) == label
    }


def assert_same_targets(ours, reference):
    labels, bbox_targets, ray_targets = ours
    ref_labels, ref_bbox_targets, ref_ray_targets = reference
    assert torch.equal(labels, ref_labels)
    assert torch.equal(bbox_targets, ref_bbox_targets)
    torch.testing.assert_close(ray_targets, ref_ray_targets, atol=1e-5, rtol=0)


def test_built_from_the_registry():
    target = build()
    assert isinstance(target, PolarTarget) and target.num_rays == 36


# 20 images: full size, half size, and a size not divisible by 128 (ceil feature maps).
IMAGES = [((768, 1280), 7)] * 3 + [((384, 640), 5)] * 13 + [((200, 328), 3)] * 4


@pytest.mark.parametrize('image', range(len(IMAGES)))
def test_single_image_matches_the_loop(image):
    pad_shape, num_instances = IMAGES[image]
    rng = np.random.default_rng(100 + image)
    scale = min(pad_shape) / 768
    masks, bboxes, labels = random_instances(
        rng, pad_shape, num_instances, NUM_CLASSES, 6 * scale, 300 * scale
    )
    ours = build().get_targets_single(masks, bboxes, labels, pad_shape, NUM_CLASSES)
    reference = polar_targets_loop(masks, bboxes, labels, pad_shape, NUM_CLASSES)
    assert_same_targets(ours, reference)
    assert (ours[0] < NUM_CLASSES).sum() >= num_instances  # every instance has positives


@pytest.mark.parametrize('num_rays', [18, 72])
def test_other_ray_counts_match_the_loop(num_rays):
    pad_shape = (256, 384)
    masks, bboxes, labels = random_instances(
        np.random.default_rng(num_rays), pad_shape, 4, NUM_CLASSES, 4, 100
    )
    ours = build(num_rays).get_targets_single(masks, bboxes, labels, pad_shape, NUM_CLASSES)
    reference = polar_targets_loop(masks, bboxes, labels, pad_shape, NUM_CLASSES, num_rays=num_rays)
    assert ours[2].shape[-1] == num_rays
    assert_same_targets(ours, reference)


@pytest.mark.parametrize('radius', [0.5, 2.3])
def test_other_sampling_radii_match_the_loop(radius):
    pad_shape = (256, 384)
    masks, bboxes, labels = random_instances(
        np.random.default_rng(int(radius * 10)), pad_shape, 5, NUM_CLASSES, 4, 120
    )
    target = PolarTarget(STRIDES, RANGES, center_sample_radius=radius)
    ours = target.get_targets_single(masks, bboxes, labels, pad_shape, NUM_CLASSES)
    reference = polar_targets_loop(masks, bboxes, labels, pad_shape, NUM_CLASSES, radius=radius)
    assert_same_targets(ours, reference)


def test_fill_missing_rays_changes_only_the_missing_rays_of_positives():
    pad_shape = (256, 384)
    masks, bboxes, labels = random_instances(
        np.random.default_rng(9), pad_shape, 6, NUM_CLASSES, 3, 60
    )
    plain = build().get_targets_single(masks, bboxes, labels, pad_shape, NUM_CLASSES)
    target = PolarTarget(STRIDES, RANGES, fill_missing_rays=True)
    filled = target.get_targets_single(masks, bboxes, labels, pad_shape, NUM_CLASSES)
    torch.testing.assert_close(filled[:2], plain[:2])  # labels and boxes
    missing = plain[2] == torch.tensor(MISSING_RAY)
    torch.testing.assert_close(filled[2][~missing], plain[2][~missing])
    positives = plain[0] < NUM_CLASSES
    assert missing[positives].sum() > 100
    # Rays of positives outside thin or two-part shapes may cross nothing and stay missing.
    filled_rays = filled[2][missing]
    assert ((filled_rays == torch.tensor(MISSING_RAY)) | (filled_rays > 0.5)).all()
    assert (filled_rays > 0.5).float().mean() > 0.3


def test_batch_equals_single_images():
    pad_shape = (256, 384)
    rng = np.random.default_rng(7)
    images = [random_instances(rng, pad_shape, g, NUM_CLASSES, 4, 100) for g in (3, 1, 5)]
    empty = (np.zeros((0, *pad_shape), np.uint8), np.zeros((0, 4), np.float32), np.zeros(0))
    images.insert(1, empty)
    target = build()
    labels, bbox_targets, ray_targets = target.get_targets(
        sizes_for(pad_shape), [instances_of(*image) for image in images], NUM_CLASSES
    )
    num_points = sum(h * w for h, w in featmap_sizes_for(pad_shape, list(STRIDES)))
    assert labels.shape == (4, num_points) and labels.dtype == torch.long
    assert bbox_targets.shape == (4, num_points, 4) and ray_targets.shape == (4, num_points, 36)
    for index, image in enumerate(images):
        single = target.get_targets_single(*image, pad_shape, NUM_CLASSES)
        assert_same_targets((labels[index], bbox_targets[index], ray_targets[index]), single)
    assert (labels[1] == NUM_CLASSES).all()
    assert not bbox_targets[1].any() and not ray_targets[1].any()


def test_negatives_are_background_with_zero_targets():
    pad_shape = (256, 384)
    masks, bboxes, labels = random_instances(
        np.random.default_rng(8), pad_shape, 3, NUM_CLASSES, 4, 100
    )
    labels_out, bbox_targets, ray_targets = build().get_targets_single(
        masks, bboxes, labels, pad_shape, NUM_CLASSES
    )
    negative = labels_out == NUM_CLASSES
    assert negative.any() and (~negative).any()
    assert not bbox_targets[negative].any() and not ray_targets[negative].any()
    assert (ray_targets[~negative] > 0).any(dim=1).all()


def test_instance_without_contour_is_dropped():
    pad_shape = (256, 384)
    masks, bboxes, labels = random_instances(
        np.random.default_rng(9), pad_shape, 3, NUM_CLASSES, 4, 100
    )
    with_empty = np.concatenate((masks[:1], np.zeros_like(masks[:1]), masks[1:]))
    boxes_with_empty = np.concatenate((bboxes[:1], bboxes[:1], bboxes[1:]))
    labels_with_empty = np.concatenate((labels[:1], [5], labels[1:]))
    target = build()
    ours = target.get_targets_single(
        with_empty, boxes_with_empty, labels_with_empty, pad_shape, NUM_CLASSES
    )
    assert_same_targets(
        ours, target.get_targets_single(masks, bboxes, labels, pad_shape, NUM_CLASSES)
    )


def test_strict_inside_the_clipped_sampling_square():
    # Level 0 (stride 8) points sit at x, y = 4, 12, 20, 28, 36, ...; the square around (24, 24)
    # is [12, 36]: the points at 12 and 36 lie on its edges and are outside (strict > 0).
    pad_shape = (128, 128)
    target = build()
    instances = square_instances([[0.0, 0.0, 60.0, 60.0]], [[24.0, 24.0]], [3])
    labels = target.get_targets(sizes_for(pad_shape), [instances], NUM_CLASSES)[0][0]
    positives = level0_positives(labels, pad_shape, 3)
    assert positives == {(20, 20), (28, 20), (20, 28), (28, 28)}
    assert (labels == 3).sum() == 4

    # Clipped by the box: the box edge x1 = 20 sits on the points at x = 20, which drop out;
    # just left of them (19.9) they are in again.
    for x1, expected in (
        (20.0, {(28, 20), (28, 28)}),
        (19.9, {(20, 20), (28, 20), (20, 28), (28, 28)}),
    ):
        instances = square_instances([[x1, 0.0, 60.0, 60.0]], [[24.0, 24.0]], [3])
        labels = target.get_targets(sizes_for(pad_shape), [instances], NUM_CLASSES)[0][0]
        positives = level0_positives(labels, pad_shape, 3)
        assert positives == expected


def test_regress_range_is_inclusive():
    # At (100, 100): l = 64 exactly, the upper end of level 0's range (-1, 64): positive.
    # At (108, 100): l = 72, outside it: negative on level 0.
    pad_shape = (256, 256)
    instances = square_instances([[36.0, 90.0, 110.0, 110.0]], [[100.0, 100.0]], [2])
    labels = build().get_targets(sizes_for(pad_shape), [instances], NUM_CLASSES)[0][0]
    assert labels_at(labels, pad_shape, 0, (100, 100)) == 2
    assert labels_at(labels, pad_shape, 0, (108, 100)) == NUM_CLASSES


def test_ties_go_to_the_smallest_box_then_the_first_gt():
    pad_shape = (128, 128)
    target = build()
    centers = [[44.0, 44.0], [44.0, 44.0]]
    same_area = [[20.0, 20.0, 70.0, 70.0], [18.0, 22.0, 68.0, 72.0]]
    for labels_in, winner in (([1, 2], 1), ([2, 1], 2)):
        instances = square_instances(same_area, centers, labels_in)
        labels, bbox_targets, _ = target.get_targets(sizes_for(pad_shape), [instances], 80)
        positive = labels[0] < NUM_CLASSES
        assert positive.sum() == 9 and (labels[0][positive] == winner).all()
    smaller_second = [[10.0, 10.0, 80.0, 80.0], [20.0, 20.0, 70.0, 70.0]]
    instances = square_instances(smaller_second, centers, [1, 2])
    labels, bbox_targets, _ = target.get_targets(sizes_for(pad_shape), [instances], 80)
    positive = labels[0] < NUM_CLASSES
    assert positive.sum() == 9 and (labels[0][positive] == 2).all()
    # Box targets are to the winning box: l = x - 20 at the point (44, 44).
    index = torch.nonzero(positive)[4, 0]
    assert bbox_targets[0, index].tolist() == [24.0, 24.0, 26.0, 26.0]


def test_first_instance_centred_at_x_zero_keeps_its_positives():
    # The original returned no positives at all in this case (its "no gt" test); fixed here.
    pad_shape = (128, 128)
    instances = square_instances([[0.0, 30.0, 20.0, 70.0]], [[0.0, 50.0]], [4])
    labels = build().get_targets(sizes_for(pad_shape), [instances], NUM_CLASSES)[0][0]
    assert labels_at(labels, pad_shape, 0, (4, 52)) == 4


def test_bad_inputs_name_the_fix():
    with pytest.raises(ValueError, match='divide 360'):
        PolarTarget(STRIDES, RANGES, num_rays=7)
    with pytest.raises(ValueError, match='one \\(lo, hi\\) range per level'):
        PolarTarget(STRIDES, RANGES[:4])
    target = build()
    pad_shape = (128, 128)
    instances = square_instances([[0.0, 0.0, 60.0, 60.0]], [[24.0, 24.0]], [3])
    with pytest.raises(ValueError, match='every level'):
        target.get_targets(sizes_for(pad_shape)[:4], [instances], 80)
    instances.contours = [torch.zeros(0, 2)]
    with pytest.raises(ValueError, match='PolarContours'):
        target.get_targets(sizes_for(pad_shape), [instances], 80)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('fill_missing_rays', [False, True])
def test_device_batch_equals_cpu(fill_missing_rays):
    pad_shape = (384, 640)
    rng = np.random.default_rng(11)
    batch = [instances_of(*random_instances(rng, pad_shape, 6, 80, 4, 150)) for _ in range(4)]
    target = PolarTarget(STRIDES, RANGES, fill_missing_rays=fill_missing_rays)
    cpu = target.get_targets(sizes_for(pad_shape), batch, NUM_CLASSES)
    cuda = target.get_targets(sizes_for(pad_shape), batch, NUM_CLASSES, device='cuda')
    assert all(t.device.type == 'cuda' for t in cuda)
    assert_same_targets(tuple(t.cpu() for t in cuda), cpu)


def test_positives_name_the_points_and_instances_that_get_targets_labels():
    pad_shape = (256, 384)
    rng = np.random.default_rng(11)
    images = [random_instances(rng, pad_shape, g, NUM_CLASSES, 4, 100) for g in (3, 4)]
    empty = (np.zeros((0, *pad_shape), np.uint8), np.zeros((0, 4), np.float32), np.zeros(0))
    images.insert(1, empty)
    batch = [instances_of(*image) for image in images]
    target = build()
    labels, bbox_targets, _ = target.get_targets(sizes_for(pad_shape), batch, NUM_CLASSES)
    image_ids, points, instances = target.positives(sizes_for(pad_shape), batch)
    expected = (labels != NUM_CLASSES).nonzero().tolist()
    assert sorted(zip(image_ids.tolist(), points.tolist(), strict=True)) == sorted(
        map(tuple, expected)
    )
    assert 1 not in image_ids.tolist()
    for image, point, instance in zip(image_ids, points, instances, strict=True):
        gt = batch[image]
        assert labels[image, point] == gt.labels[instance]
        # l + r and t + b of the box target span the assigned instance's box (inclusive - 1).
        left, top, right, bottom = bbox_targets[image, point].tolist()
        x1, y1, x2, y2 = gt.bboxes[instance].tolist()
        assert left + right == pytest.approx(x2 - x1) and top + bottom == pytest.approx(y2 - y1)


def test_positives_of_a_batch_without_instances_are_empty():
    empty = square_instances(np.zeros((0, 4)), np.zeros((0, 2)), np.zeros(0, dtype=np.int64))
    image_ids, points, instances = build().positives(sizes_for((64, 64)), [empty])
    assert image_ids.numel() == points.numel() == instances.numel() == 0

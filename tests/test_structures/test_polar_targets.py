"""Target side of the polar codec: mask_contour, ray_targets, polar_centerness.

As the original: ``docs/original_polarmask.md#mass-centre-and-contour``,
``docs/original_polarmask.md#ray-targets``, ``docs/original_polarmask.md#losses``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from polarmask.structures.polar import (
    MISSING_RAY,
    _degree_bins,
    contour_crossings,
    mask_contour,
    polar_centerness,
    ray_targets,
    ray_targets_packed,
)
from tests.oracles.polar_target_loop import (
    contour_crossings_loop,
    largest_contour_and_center,
    ray_targets_loop,
)
from tests.oracles.random_instances import SHAPE_KINDS, box_of, random_mask

ORIGIN = (200.0, 200.0)
MISSING = torch.tensor(MISSING_RAY, dtype=torch.float32).item()


def offset_in_bin(degree: int, distance: float) -> tuple[int, int]:
    """An integer (dx, dy) about ``distance`` long whose atan2(dx, dy) lies inside ``degree``."""
    theta = math.radians(degree + 0.5)
    dx, dy = round(distance * math.sin(theta)), round(distance * math.cos(theta))
    exact = math.degrees(math.atan2(dx, dy)) % 360
    assert math.floor(exact) == degree and 0.1 < exact - degree < 0.9
    return dx, dy


def rays_around(offsets: list[tuple[int, int]], num_rays: int = 36) -> torch.Tensor:
    """Rays from ORIGIN to a contour made of the given offsets: (R,)."""
    contour = torch.tensor([(ORIGIN[0] + dx, ORIGIN[1] + dy) for dx, dy in offsets])
    return ray_targets(torch.tensor([ORIGIN]), contour, num_rays)[0]


def length(offset: tuple[int, int]) -> float:
    return torch.tensor(float(offset[0] ** 2 + offset[1] ** 2)).sqrt().item()


# --- mask_contour ------------------------------------------------


def test_mask_contour_empty_mask_is_none():
    mask = np.zeros((20, 30), dtype=np.uint8)
    assert mask_contour(mask) is None
    assert mask_contour(mask, (2, 2, 10, 10)) is None


def test_mask_contour_rectangle():
    mask = np.zeros((40, 50), dtype=np.uint8)
    mask[5:15, 10:30] = 1  # x 10..29, y 5..14
    contour, center = mask_contour(mask)
    assert contour.dtype == np.float32 and center.dtype == np.float32
    assert len(contour) == 2 * (19 + 9)
    assert contour[:, 0].min() == 10 and contour[:, 0].max() == 29
    assert contour[:, 1].min() == 5 and contour[:, 1].max() == 14
    np.testing.assert_array_equal(center, [19, 9])  # centroid (19.5, 9.5), truncated


def test_mask_contour_donut_keeps_outer_border():
    mask = np.zeros((100, 100), dtype=np.uint8)
    cv2.circle(mask, (50, 50), 30, 1, -1)
    cv2.circle(mask, (50, 50), 15, 0, -1)
    contour, center = mask_contour(mask)
    radii = np.hypot(contour[:, 0] - 50, contour[:, 1] - 50)
    assert radii.min() > 28  # no point of the hole's border
    reference, reference_center = largest_contour_and_center(mask)
    np.testing.assert_array_equal(contour, reference)
    np.testing.assert_array_equal(center, reference_center)


def test_mask_contour_two_parts_keeps_the_larger():
    mask = np.zeros((100, 120), dtype=np.uint8)
    cv2.circle(mask, (90, 70), 8, 1, -1)
    cv2.circle(mask, (30, 30), 20, 1, -1)
    contour, center = mask_contour(mask)
    assert np.hypot(contour[:, 0] - 30, contour[:, 1] - 30).max() <= 21
    assert np.abs(center - 30).max() <= 1
    reference, reference_center = largest_contour_and_center(mask)
    np.testing.assert_array_equal(contour, reference)
    np.testing.assert_array_equal(center, reference_center)


@pytest.mark.parametrize(
    'draw',
    [
        lambda m: cv2.line(m, (10, 20), (40, 20), 1, 1),
        lambda m: cv2.line(m, (15, 5), (15, 35), 1, 1),
        lambda m: cv2.line(m, (5, 5), (35, 33), 1, 1),
        lambda m: m.__setitem__((7, 9), 1),
    ],
    ids=['horizontal', 'vertical', 'diagonal', 'single-pixel'],
)
def test_mask_contour_one_pixel_wide_uses_mean_of_points(draw):
    mask = np.zeros((40, 50), dtype=np.uint8)
    draw(mask)
    contour, center = mask_contour(mask)
    reference, reference_center = largest_contour_and_center(mask)
    np.testing.assert_array_equal(contour, reference)
    np.testing.assert_array_equal(center, reference_center)
    mean_x, mean_y = reference.mean(axis=0)
    np.testing.assert_array_equal(center, [int(mean_x), int(mean_y)])


def test_mask_contour_touching_the_border():
    mask = np.zeros((60, 80), dtype=np.uint8)
    mask[0:25, 0:30] = 1
    mask[40:60, 70:80] = 1
    contour, center = mask_contour(mask)
    assert contour[:, 0].min() == 0 and contour[:, 1].min() == 0
    np.testing.assert_array_equal(center, [14, 12])
    for bbox in [(0, 0, 29, 24), (-3, -3, 80, 60), (0, 0, 10, 10)]:
        contour_in_box, center_in_box = mask_contour(mask, bbox)
        np.testing.assert_array_equal(contour_in_box, contour)
        np.testing.assert_array_equal(center_in_box, center)


def test_mask_contour_matches_oracle_with_and_without_box():
    rng = np.random.default_rng(1)
    for index in range(120):
        kind = SHAPE_KINDS[index % len(SHAPE_KINDS)]
        mask = random_mask(rng, (120, 160), kind, float(rng.uniform(2, 60)))
        if not mask.any():
            continue
        reference, reference_center = largest_contour_and_center(mask)
        good_box = box_of(rng, mask)
        small_box = good_box + np.array([3, 3, -3, -3], dtype=np.float32)
        for bbox in (None, good_box, small_box):
            contour, center = mask_contour(mask.astype(bool), bbox)
            np.testing.assert_array_equal(contour, reference)
            np.testing.assert_array_equal(center, reference_center)


def test_mask_contour_rejects_a_stack_of_masks():
    with pytest.raises(ValueError, match=r'one \(H, W\) mask'):
        mask_contour(np.zeros((2, 5, 5), dtype=np.uint8))


# --- ray targets: the rules --------------------------------------


def test_degree_bins_of_exact_directions():
    dx = torch.tensor([0.0, 5.0, 0.0, -3.0, 7.0, 7.0, -7.0, -7.0])
    dy = torch.tensor([9.0, 0.0, -4.0, 0.0, 7.0, -7.0, -7.0, 7.0])
    assert _degree_bins(dx, dy).tolist() == [0, 90, 180, 270, 45, 135, 225, 315]


def test_degree_bins_match_float64_away_from_integers():
    grid = torch.arange(-150, 151, dtype=torch.float32)
    dx, dy = (v.reshape(-1) for v in torch.meshgrid(grid, grid, indexing='ij'))
    exact = torch.rad2deg(torch.atan2(dx.double(), dy.double())) % 360
    clear = (exact - exact.round()).abs() > 1e-3
    assert torch.equal(_degree_bins(dx, dy)[clear], exact.floor().long()[clear])


def test_cardinal_rays_and_missing_fill():
    rays = rays_around([(0, 7), (5, 0), (0, -4), (-3, 0)])
    assert rays.dtype == torch.float32 and rays.shape == (36,)
    assert rays[[0, 9, 18, 27]].tolist() == [7.0, 5.0, 4.0, 3.0]
    rest = torch.ones(36, dtype=torch.bool)
    rest[[0, 9, 18, 27]] = False
    assert (rays[rest] == MISSING).all()


@pytest.mark.parametrize(
    ('bins', 'winner'),
    [
        ((100, 101, 99), 100),
        ((101, 99, 102), 101),
        ((99, 102, 98), 99),
        ((102, 98, 103), 102),
        ((98, 103, 97), 98),
        ((103, 97), 103),
        ((97,), 97),
        ((96, 104), None),
    ],
)
def test_bin_priority_order(bins, winner):
    # Farther points in later bins must not win: the first bin hit in search order does.
    offsets = {b: offset_in_bin(b, 100 + 40 * k) for k, b in enumerate(bins)}
    rays = rays_around(list(offsets.values()))
    expected = MISSING if winner is None else length(offsets[winner])
    assert rays[10].item() == expected


def test_farthest_point_of_the_bin_wins():
    near, far, farther_next_bin = offset_in_bin(100, 150), offset_in_bin(100, 250), (0, 0)
    farther_next_bin = offset_in_bin(101, 400)
    rays = rays_around([near, far, farther_next_bin])
    assert rays[10].item() == length(far)


def test_no_wrap_around_at_zero_degrees():
    late = [offset_in_bin(b, 120) for b in (357, 358, 359)]
    rays = rays_around(late)
    assert rays[0].item() == MISSING and rays[35].item() == MISSING
    early = offset_in_bin(2, 90)
    assert rays_around([*late, early])[0].item() == length(early)
    rays_72 = rays_around([offset_in_bin(359, 120), offset_in_bin(1, 80)], num_rays=72)
    assert rays_72[71].item() == MISSING  # 355: 356..358 and 352..354, never 359
    assert rays_72[0].item() == length(offset_in_bin(1, 80))


def test_point_on_the_contour_gives_zero_at_angle_zero():
    rays = rays_around([(0, 0), (10, 0), (-6, -6)])
    assert rays[0].item() == 0.0
    assert rays[9].item() == 10.0
    assert polar_centerness(rays[None]).item() == 0.0


@pytest.mark.parametrize(('num_rays', 'indices'), [(18, [0, 9]), (72, [0, 18, 36, 54])])
def test_other_ray_counts_on_cardinal_points(num_rays, indices):
    rays = rays_around([(0, 7), (5, 0), (0, -4), (-3, 0)], num_rays)
    assert rays.shape == (num_rays,)
    expected = {18: [7.0, 4.0], 72: [7.0, 5.0, 4.0, 3.0]}[num_rays]
    assert rays[indices].tolist() == expected  # 90 and 270 are no rays of 18
    rest = torch.ones(num_rays, dtype=torch.bool)
    rest[indices] = False
    assert (rays[rest] == MISSING).all()


def test_ray_counts_sample_the_same_angles():
    rng = np.random.default_rng(3)
    contour, _ = mask_contour(random_mask(rng, (200, 200), 'star', 80.0))
    points = torch.tensor(rng.integers(40, 160, (20, 2)), dtype=torch.float32)
    rays = {r: ray_targets(points, contour, r) for r in (18, 24, 36, 72)}
    assert torch.equal(rays[72][:, ::2], rays[36])
    assert torch.equal(rays[72][:, ::3], rays[24])
    assert torch.equal(rays[72][:, ::4], rays[18])


def test_ray_targets_rejects_ray_counts_not_dividing_360():
    with pytest.raises(ValueError, match='divide 360'):
        ray_targets(torch.zeros(1, 2), torch.ones(3, 2), num_rays=7)


def test_ray_targets_of_no_points():
    assert ray_targets(torch.zeros(0, 2), torch.ones(3, 2)).shape == (0, 36)


# --- ray targets: against the per-point loop ---------------------


def random_cases(rng: np.random.Generator, num_cases: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(point (1, 2), contour (K, 2)) cases; the point is, by turns, an integer point in or
    around the shape, a point of the contour, the mask centre, or a non-integer point."""
    cases = []
    while len(cases) < num_cases:
        kind = SHAPE_KINDS[len(cases) % len(SHAPE_KINDS)]
        found = mask_contour(random_mask(rng, (72, 96), kind, float(rng.uniform(3, 40))))
        if found is None:
            continue
        contour, center = found
        point = [
            rng.integers(-8, 104, 2).astype(np.float32),
            contour[rng.integers(len(contour))],
            center,
            rng.uniform(-8, 104, 2).astype(np.float32),
        ][len(cases) % 4]
        cases.append((point[None], contour))
    return cases


def test_packed_ray_targets_match_the_loop_on_500_cases():
    cases = random_cases(np.random.default_rng(5), 500)
    points = torch.from_numpy(np.concatenate([p for p, _ in cases]))
    contours = torch.from_numpy(np.concatenate([c for _, c in cases]))
    lengths = torch.tensor([len(c) for _, c in cases])
    index = torch.arange(len(cases))
    rays = ray_targets_packed(points, contours, lengths, index)
    expected = torch.stack(
        [
            ray_targets_loop(x, y, torch.from_numpy(cases[i][1]))
            for (x, y), i in zip(points, index.tolist(), strict=True)
        ]
    )
    torch.testing.assert_close(rays, expected, atol=1e-5, rtol=0)
    assert (rays == MISSING).any() and (rays > 20).any()


@pytest.mark.parametrize('num_rays', [18, 24, 72])
def test_ray_targets_match_the_loop_for_other_ray_counts(num_rays):
    for points, contour in random_cases(np.random.default_rng(num_rays), 30):
        points = torch.from_numpy(points)
        expected = torch.stack(
            [ray_targets_loop(x, y, torch.from_numpy(contour), num_rays) for x, y in points]
        )
        torch.testing.assert_close(
            ray_targets(points, contour, num_rays), expected, atol=1e-5, rtol=0
        )


# --- exact crossings (fill_missing) ------------------------------


def crossings_of(points, contours: list[np.ndarray], index: list[int], num_rays: int = 36):
    packed = torch.from_numpy(np.concatenate(contours).astype(np.float32))
    lengths = torch.tensor([len(c) for c in contours])
    return contour_crossings(
        torch.as_tensor(points, dtype=torch.float32), packed, lengths, torch.tensor(index), num_rays
    )


def test_crossings_of_a_square_given_by_its_corners():
    # One segment spans many rays: the crossing is 10 / max(|sin|, |cos|) from the centre.
    corners = np.array([[-10, -10], [10, -10], [10, 10], [-10, 10]]) + 50
    rays = crossings_of([[50.0, 50.0]], [corners], [0])[0]
    theta = torch.arange(36, dtype=torch.float64) * math.pi / 18
    expected = 10 / torch.maximum(theta.sin().abs(), theta.cos().abs())
    torch.testing.assert_close(rays, expected.float())


def test_crossings_of_a_point_outside_look_one_way():
    # From 10 px right of a square's right side only rays pointing left (ray 27 = 270 degrees)
    # cross it, at its far side; the others cross nothing.
    corners = np.array([[-10, -10], [10, -10], [10, 10], [-10, 10]]) + 50
    rays = crossings_of([[70.0, 50.0]], [corners], [0])[0]
    assert rays[27].item() == pytest.approx(30.0)
    assert (rays[:22] == -1).all() and (rays[33:] == -1).all()


def test_crossings_match_the_loop_on_random_shapes():
    cases = random_cases(np.random.default_rng(11), 120)
    points = np.concatenate([p for p, _ in cases])
    rays = crossings_of(points, [c for _, c in cases], list(range(len(cases))))
    expected = torch.stack(
        [
            contour_crossings_loop(float(x), float(y), torch.from_numpy(contour))
            for (x, y), (_, contour) in zip(points, cases, strict=True)
        ]
    )
    torch.testing.assert_close(rays, expected, atol=1e-4, rtol=1e-5)
    assert (rays == -1).any() and (rays > 20).any()


def test_crossings_pick_each_points_own_contour():
    small = np.array([[0, 0], [4, 0], [4, 4], [0, 4]]) + 30
    large = np.array([[0, 0], [40, 0], [40, 40], [0, 40]]) + 12
    together = crossings_of([[32.0, 32.0]] * 2, [small, large], [0, 1])
    for row, contour in enumerate((small, large)):
        torch.testing.assert_close(together[row], crossings_of([[32.0, 32.0]], [contour], [0])[0])


def test_fill_missing_replaces_only_the_missing_rays():
    # A disc of radius 4: its 20 contour points are ~13 degrees apart as seen from its centre,
    # so the binning misses most rays; the exact crossings answer every one of them.
    mask = np.zeros((40, 40), np.uint8)
    cv2.circle(mask, (20, 20), 4, 1, -1)
    contour, _ = mask_contour(mask)
    points = torch.tensor([[20.0, 20.0], [22.0, 19.0]])
    binned = ray_targets(points, contour)
    filled = ray_targets(points, contour, fill_missing=True)
    missing = binned == MISSING
    assert missing.sum() > 30
    torch.testing.assert_close(filled[~missing], binned[~missing])
    exact = crossings_of(points, [contour], [0, 0])
    torch.testing.assert_close(filled[missing], exact[missing])
    assert (filled[missing] > 1).all()
    assert polar_centerness(filled).min() > 0.4 > 0.01 > polar_centerness(binned).max()


def test_fill_missing_keeps_missing_rays_that_cross_nothing():
    corners = np.array([[-10, -10], [10, -10], [10, 10], [-10, 10]], np.float32) + 50
    filled = ray_targets(torch.tensor([[70.0, 50.0]]), corners, fill_missing=True)[0]
    assert (filled[:22] == MISSING).all()


# --- polar centerness --------------------------------------------


def test_polar_centerness():
    rays = torch.tensor([[1.0, 4.0, 2.0], [3.0, 3.0, 3.0], [MISSING_RAY, 1.0, 1.0]])
    torch.testing.assert_close(polar_centerness(rays), torch.tensor([0.5, 1.0, 1e-3]))

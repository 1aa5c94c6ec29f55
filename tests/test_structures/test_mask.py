"""Polygons become masks and RLE within their boxes, with the pixels and bytes of a full canvas."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from polarmask.structures.mask import polygon_to_mask, polygons_to_masks, polygons_to_rles
from tests.oracles.full_canvas_masks import full_canvas_masks, full_canvas_rles


def _polygons(rng: np.random.Generator, kind: str, n: int, shape: tuple[int, int]) -> np.ndarray:
    """(n, R, 2) float32 polygons of one kind on an (H, W) canvas."""
    height, width = shape
    if kind == 'star':  # 36 rays around a centre, crossing the border now and then
        angles = np.linspace(0, 2 * np.pi, 36, endpoint=False)[None, :, None]
        centres = rng.uniform(0, [width, height], (n, 1, 2))
        lengths = rng.uniform(0, 0.6 * max(shape), (n, 36, 1))
        polygons = centres + lengths * np.concatenate((np.sin(angles), np.cos(angles)), axis=2)
    elif kind == 'scribble':  # self-intersecting, partly outside
        polygons = rng.uniform(-0.5, 1.5, (n, 36, 2)) * [width, height]
    elif kind == 'edges':  # vertices on and next to every border, full-height crops
        polygons = rng.uniform(0, 1, (n, 12, 2)) * [width, height]
        on_border = rng.choice([-1, 0, height - 1, height], (n, 12))
        polygons[..., 1] = np.where(rng.random((n, 12)) < 0.4, on_border, polygons[..., 1])
    elif kind == 'far':  # far outside, degenerate (1-2 vertices)
        polygons = rng.uniform(-1e4, 1e4, (n, int(rng.integers(1, 4)), 2))
    return polygons.astype(np.float32)


@pytest.mark.parametrize('kind', ['star', 'scribble', 'edges', 'far'])
def test_box_wise_masks_and_rles_equal_the_full_canvas(kind):
    rng = np.random.default_rng(0)
    for _ in range(150):
        shape = (int(rng.integers(1, 70)), int(rng.integers(1, 70)))
        polygons = _polygons(rng, kind, int(rng.integers(0, 4)), shape)
        expected = full_canvas_masks(polygons, shape)
        assert polygons_to_rles(polygons, shape) == full_canvas_rles(polygons, shape)
        np.testing.assert_array_equal(polygons_to_masks(polygons, shape), expected)
        for polygon, mask in zip(polygons, expected, strict=True):
            np.testing.assert_array_equal(polygon_to_mask(polygon, shape), mask)


def test_rle_memory_follows_the_objects_not_the_image():
    shape = (6000, 8000)  # a 48 MB canvas per detection
    polygons = _polygons(np.random.default_rng(1), 'star', 3, (60, 80)) + [4000, 3000]
    tracemalloc.start()
    try:
        rles = polygons_to_rles(polygons, shape)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rles) == 3 and all(rle['size'] == [6000, 8000] for rle in rles)
    assert peak < 1e6, f'{peak / 1e6:.1f} MB for 3 detections of about 60 px'

"""Ray angles of the polar codec: the original's float32 values, bit for bit."""

import numpy as np
import torch

from polarmask.structures.polar import angles


def test_angles_are_the_originals_float32_values():
    # The original: torch.range(0, 350, 10) / 180 * math.pi, in float32.
    degrees = np.arange(0, 360, 10, dtype=np.float32)
    original = degrees / np.float32(180) * np.float32(np.pi)
    ours = angles(36).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, original)
    # Multiplying by pi first rounds differently: the order of operations is what is tested.
    assert (degrees * np.float32(np.pi) / np.float32(180) != original).sum() > 0


def test_angles_in_float64_for_other_ray_counts():
    theta = angles(72, dtype=torch.float64)
    expected = torch.arange(72, dtype=torch.float64) * 5 / 180 * np.pi
    assert torch.equal(theta, expected)

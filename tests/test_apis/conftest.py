"""The demo model with known predictions (``demo_model.py``), shared by the API tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from polarmask.apis import init_detector
from tests.test_apis.demo_model import CONFIG, write_demo_checkpoint


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_checkpoint(tmp_path_factory.mktemp('checkpoint') / 'demo.pth')


@pytest.fixture(scope='module')
def model(checkpoint: Path) -> torch.nn.Module:
    return init_detector(CONFIG, str(checkpoint))

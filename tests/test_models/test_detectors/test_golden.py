"""Golden outputs of a seeded tiny PolarMask, to catch numeric drift in the model code.

The weights and the input come from an explicit ``torch.Generator`` (not from the layers' init
functions), and their fingerprints are stored with the outputs, so a failure says whether the
model's arithmetic changed or only the seeded inputs did. Regenerate after an intended change:

    POLARMASK_UPDATE_GOLDEN=1 pytest tests/test_models/test_detectors/test_golden.py
"""

import copy
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from polarmask.registry import MODELS
from polarmask.structures import DetDataSample
from polarmask.structures.polar import mask_contour
from tests.tiny_model import tiny_model_cfg

GOLDEN = Path(__file__).resolve().parents[2] / 'data' / 'golden' / 'polarmask_tiny.pt'
UPDATE = os.environ.get('POLARMASK_UPDATE_GOLDEN') == '1'

MODEL = tiny_model_cfg(max_per_img=6)


def _seeded_model():
    model = MODELS.build(copy.deepcopy(MODEL)).eval()
    generator = torch.Generator().manual_seed(20191112)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.rand(tensor.shape, generator=generator, dtype=torch.float64)
            if name.endswith('running_var'):
                tensor.copy_(values + 0.5)
            elif tensor.dim() == 4:
                bound = math.sqrt(3.0 / tensor[0].numel())
                tensor.copy_((values * 2 - 1) * bound)
            else:
                tensor.copy_(values * 0.4 + (0.8 if name.endswith(('weight', 'scale')) else -0.2))
    return model


def _seeded_batch():
    generator = torch.Generator().manual_seed(7)
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=generator)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:50, 14:45] = 1
    mask[30:50, 30:45] = 0  # an L shape: rays of different lengths
    contour, center = mask_contour(mask)
    sample = DetDataSample(
        metainfo=dict(
            img_id=0,
            img_path='golden.jpg',
            ori_shape=(128, 96),
            img_shape=(64, 64),
            scale_factor=(1.5, 2.0),
            pad_shape=(64, 64),
        )
    )
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[14.0, 10.0, 44.0, 49.0]]),
        labels=torch.tensor([2]),
        contours=[torch.from_numpy(contour)],
        centers=torch.from_numpy(center)[None],
    )
    return dict(inputs=[image], data_samples=[sample])


def _fingerprint(tensors) -> float:
    return float(sum(t.double().abs().sum() for t in tensors))


@torch.no_grad()
def _run() -> dict:
    torch.use_deterministic_algorithms(True)
    try:
        model = _seeded_model()
        data = model.data_preprocessor(_seeded_batch(), training=False)
        raw = model(**copy.deepcopy(data), mode='tensor')
        with torch.enable_grad():
            losses = model(**copy.deepcopy(data), mode='loss')
        (sample,) = model(**data, mode='predict')
    finally:
        torch.use_deterministic_algorithms(False)
    preds = sample.pred_instances
    return dict(
        weights_fingerprint=_fingerprint(model.state_dict().values()),
        input_fingerprint=_fingerprint([data['inputs']]),
        raw={
            name: [t.float() for t in level]
            for name, level in zip(
                ('cls_scores', 'bbox_preds', 'centernesses', 'ray_preds'), raw, strict=True
            )
        },
        losses={name: value.detach().float() for name, value in losses.items()},
        preds=dict(
            bboxes=preds.bboxes, scores=preds.scores, labels=preds.labels, polygons=preds.polygons
        ),
    )


def test_tiny_model_matches_golden_outputs():
    result = _run()
    if UPDATE:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        torch.save(result, GOLDEN)
    if not GOLDEN.is_file():
        pytest.fail(f'{GOLDEN} is missing: create it with POLARMASK_UPDATE_GOLDEN=1')
    golden = torch.load(GOLDEN, weights_only=True)

    assert result['weights_fingerprint'] == pytest.approx(
        golden['weights_fingerprint'], rel=1e-9
    ), 'seeded weights changed'
    assert result['input_fingerprint'] == pytest.approx(golden['input_fingerprint'], rel=1e-9)
    for name, levels in golden['raw'].items():
        for level, expected in enumerate(levels):
            torch.testing.assert_close(
                result['raw'][name][level],
                expected,
                rtol=1e-4,
                atol=1e-5,
                msg=lambda m, n=name, lv=level: f'{n}[{lv}]: {m}',
            )
    for name, expected in golden['losses'].items():
        torch.testing.assert_close(result['losses'][name], expected, rtol=1e-4, atol=1e-6)
    preds, expected = result['preds'], golden['preds']
    assert len(expected['scores']) > 1, 'golden predictions should not be empty'
    assert preds['labels'].tolist() == expected['labels'].tolist()
    for name in ('bboxes', 'scores', 'polygons'):
        torch.testing.assert_close(preds[name], expected[name], rtol=1e-4, atol=1e-3)

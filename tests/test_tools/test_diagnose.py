"""tools/analysis_tools/diagnose.py on generated shapes with the demo model of known predictions,
and the figures of polarmask.analysis.diagnostics it prints."""

from __future__ import annotations

import json

import pytest
import torch
from mmengine.structures import InstanceData

from polarmask.analysis.diagnostics import (
    SIZE_BINS,
    SegmEvaluator,
    ceiling_polygons,
    diagnostic_dataloader,
    diagnostic_pipeline,
    ground_truth,
    summarize,
)
from polarmask.analysis.ground_truth import config_ground_truth
from polarmask.datasets.shapes_generator import make_shapes_dataset
from polarmask.registry import MODELS
from polarmask.structures.mask import polygons_to_masks
from polarmask.structures.polar import mask_contour
from polarmask.utils import register_all_modules
from polarmask.utils.config import load_config
from tests.test_apis.demo_model import CONFIG, write_demo_checkpoint
from tests.test_tools.test_result_analysis import load_tool

diagnose = load_tool('analysis_tools', 'diagnose')


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    """The json report of a diagnose run with --sweep and --loss-batches on 4 + 4 images."""
    tmp = tmp_path_factory.mktemp('diagnose')
    root = tmp / 'shapes'
    make_shapes_dataset(root, num_train=4, num_val=4, image_size=(160, 160))
    checkpoint = write_demo_checkpoint(tmp / 'demo.pth')
    out = tmp / 'diag.json'
    options = [
        f'train_dataloader.dataset.data_root={root}/',
        f'test_dataloader.dataset.data_root={root}/',
        f'test_evaluator.ann_file={root}/annotations/instances_val.json',
    ]
    assert (
        diagnose.main(
            [
                CONFIG,
                str(checkpoint),
                '--sweep',
                '--loss-batches',
                '1',
                '--out',
                str(out),
                '--cfg-options',
                *options,
            ]
        )
        == 0
    )
    annotations = json.loads((root / 'annotations' / 'instances_val.json').read_text())
    return json.loads(out.read_text()), annotations


def test_every_instance_is_recorded_once(report):
    result, annotations = report
    assert len(result['instances']) == len(annotations['annotations'])
    (everything,) = [row for row in result['by_size'] if row['group'] == 'all']
    assert everything['instances'] == len(annotations['annotations'])
    names = {name for name, _, _ in SIZE_BINS} | {'all'}
    assert {row['group'] for row in result['by_size']} <= names


def test_recall_after_nms_never_exceeds_recall_before(report):
    for record in report[0]['instances']:
        if record['final_iou'] >= 0.5:
            assert record['pre_nms_recall']
        assert record['final_iou'] <= record['final_iou_any_class'] + 1e-9
        assert 0.5 < record['ceiling_iou'] <= 1
        assert record['positives'] >= 0 and record['loss_weight'] >= 0


def test_ceiling_beats_the_untrained_model_and_the_sweep_starts_as_configured(report):
    result, _ = report
    assert result['ceiling_ap']['AP'] > 0.5 > result['model_ap']['AP']
    first = result['sweep'][0]
    assert first['setting'] == 'as configured' and first['AP'] == result['model_ap']['AP']
    assert {'class-agnostic NMS', 'mask_nms', 'score = cls only'} <= {
        row['setting'] for row in result['sweep']
    }


def test_losses_of_both_splits(report):
    losses = report[0]['losses']
    assert set(losses) == {'train', 'test'}
    assert {'loss_cls', 'loss_mask'} <= set(losses['test'])


def test_ceiling_polygon_of_a_disc_covers_it():
    mask = torch.zeros(64, 64, dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing='ij')
    mask[(xx - 30) ** 2 + (yy - 28) ** 2 <= 15**2] = 1
    contour, center = mask_contour(mask.numpy())
    gt = InstanceData(
        labels=torch.tensor([0]),
        contours=[torch.from_numpy(contour)],
        centers=torch.from_numpy(center)[None],
    )
    (drawn,) = polygons_to_masks(ceiling_polygons(gt, 36), (64, 64))
    overlap = (drawn & mask.numpy().astype(bool)).sum() / (drawn | mask.numpy().astype(bool)).sum()
    assert overlap > 0.9


def test_ceiling_at_the_ground_truths_resolution_follows_the_heads_rasterisation(tmp_path):
    root = tmp_path / 'shapes'
    make_shapes_dataset(root, num_train=1, num_val=4, image_size=(160, 160))
    ann_file = f'{root}/annotations/instances_val.json'
    register_all_modules()
    cfg = load_config(
        CONFIG,
        {'test_dataloader.dataset.data_root': f'{root}/', 'test_evaluator.ann_file': ann_file},
    )
    images = ground_truth(diagnostic_dataloader(cfg, resize=False))
    for _, metainfo in images:
        assert tuple(metainfo['scale_factor']) == (1.0, 1.0)
        assert tuple(metainfo['img_shape'][:2]) == tuple(metainfo['ori_shape'][:2]) == (160, 160)
    head = MODELS.build(cfg.model).bbox_head
    evaluator = SegmEvaluator(ann_file, config_ground_truth(cfg).cat_ids)
    assert head.test_cfg.round_vertices
    rounded = evaluator.ceiling_ap(images, head)
    head.test_cfg.round_vertices = False
    truncated = evaluator.ceiling_ap(images, head)
    # Truncation shifts every ideal polygon by half a pixel up and left on average.
    assert rounded['AP'] > truncated['AP'] + 0.02
    assert rounded['AP50'] >= truncated['AP50'] > 0.9


def test_diagnostic_pipeline_loads_annotations_and_keeps_masks():
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(160, 160), keep_ratio=False),
        dict(type='PackPolarInputs'),
    ]
    types = [t['type'] for t in diagnostic_pipeline(test_pipeline)]
    assert types == [
        'LoadImageFromFile',
        'LoadAnnotations',
        'Resize',
        'PolarContours',
        'PackPolarInputs',
    ]
    types = [t['type'] for t in diagnostic_pipeline(test_pipeline, resize=False)]
    assert types == ['LoadImageFromFile', 'LoadAnnotations', 'PolarContours', 'PackPolarInputs']
    with pytest.raises(ValueError, match='PackPolarInputs'):
        diagnostic_pipeline(test_pipeline[:2])


def test_summarize_refuses_unknown_groups():
    with pytest.raises(ValueError, match="'size', 'level' or 'touching'"):
        summarize([], 'colour')

"""CocoMetric evaluates every ground truth the dataset loader accepts, and reads it at the start."""

from __future__ import annotations

import json
import math

import pytest

from polarmask.evaluation import CocoMetric
from polarmask.evaluation import ground_truth as ground_truth_module
from tests.test_evaluation.test_coco_metric import perfect_samples, run_metric, write_gt

CLASSES = dict(classes=('cat', 'dog'))


@pytest.fixture
def logged(monkeypatch) -> list[str]:
    messages: list[str] = []
    monkeypatch.setattr(ground_truth_module, 'print_log', lambda msg, **kw: messages.append(msg))
    return messages


def _loader_accepted_gt(tmp_path) -> str:
    """The metric tests' ground truth with what COCO files lack and the loader accepts."""
    path = tmp_path / 'gt.json'
    write_gt(path)
    raw = json.loads(path.read_text())
    first, second, third, fourth, fifth = raw['annotations']
    for ann in raw['annotations']:
        del ann['area']  # optional for the loader (it counts the mask's pixels)
    del first['iscrowd'], second['id']
    third['segmentation'] = []  # the loader skips it
    fourth['segmentation'] = [[10, 10, 40, 10]]  # 2 points: the loader drops the polygon
    fifth['segmentation'] = [[50.0, 80.0, 90.0, math.nan, 90.0, 110.0], [40, 85, 60, 85, 50, 105]]
    path.write_text(json.dumps(raw))  # NaN as json.dump writes it
    return str(path)


def test_what_the_loader_accepts_is_evaluated(tmp_path, logged):
    gt_file = _loader_accepted_gt(tmp_path)
    metric = CocoMetric(ann_file=gt_file, metric=['segm', 'bbox'])
    metric.dataset_meta = CLASSES
    assert any("given their mask's area: 3 (e.g. annotation 1 " in m for m in logged), logged
    assert any('annotations without a segmentation: 1 (e.g. annotation 3' in m for m in logged)
    assert any('without a valid polygon: 1 (e.g. annotation 4' in m for m in logged)
    assert any('NaN, infinite or not numbers dropped: 1 (e.g. annotation 5' in m for m in logged)
    assert any('given an id' in m and 'annotation #1 (image id 1)' in m for m in logged)

    results = run_metric(metric, perfect_samples())
    assert 0.0 < results['coco/segm_mAP'] < 1.0 and 0.0 < results['coco/bbox_mAP'] < 1.0
    assert all(math.isfinite(value) for value in results.values())


@pytest.mark.parametrize(
    ('content', 'error'),
    [
        ('', r"'.*gt\.json' \(0 bytes\) is not valid JSON"),
        ('[1, 2]', r"'.*gt\.json' is not a COCO instances json"),
    ],
)
def test_unreadable_ground_truth_stops_when_the_metric_gets_its_dataset(tmp_path, content, error):
    (tmp_path / 'gt.json').write_text(content)
    metric = CocoMetric(ann_file=str(tmp_path / 'gt.json'))
    with pytest.raises(ValueError, match=error):
        metric.dataset_meta = CLASSES

"""CocoMetric and DumpDetResults against a direct pycocotools evaluation of the same files."""

from __future__ import annotations

import contextlib
import io
import json
import math
import pickle

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from polarmask.evaluation import CocoMetric, DumpDetResults
from polarmask.evaluation.metrics import coco_metric
from polarmask.evaluation.metrics.coco_metric import BACKENDS
from polarmask.structures import DetDataSample
from polarmask.structures.mask import polygons_to_masks

HEIGHT, WIDTH = 120, 160
CATEGORIES = [dict(id=3, name='cat'), dict(id=7, name='dog')]


def ellipse(cx: float, cy: float, a: float, b: float, num_rays: int = 36) -> np.ndarray:
    theta = np.arange(num_rays) * 2 * math.pi / num_rays
    return np.stack((cx + a * np.sin(theta), cy + b * np.cos(theta)), axis=-1).astype(np.float32)


# per image: (polygon, label) of the objects
OBJECTS = {
    1: [(ellipse(40, 40, 25, 18), 0), (ellipse(110, 70, 30, 35), 1)],
    2: [(ellipse(60, 60, 8, 6), 0), (ellipse(120, 30, 20, 12), 1), (ellipse(50, 95, 40, 15), 1)],
}
CROWD = ellipse(120, 90, 25, 20)


def mask_box(mask: np.ndarray) -> list[float]:
    """x1y1x2y2 inclusive box of the mask pixels."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def write_gt(path, with_crowd: bool = False) -> str:
    """GT masks are the rasterised polygons themselves, so exact predictions have IoU 1."""
    images, annotations = [], []
    for img_id, objects in OBJECTS.items():
        images.append(dict(id=img_id, file_name=f'{img_id}.jpg', height=HEIGHT, width=WIDTH))
        entries = [(p, CATEGORIES[label]['id'], 0) for p, label in objects]
        if with_crowd and img_id == 1:
            entries.append((CROWD, CATEGORIES[1]['id'], 1))
        for polygon, cat_id, crowd in entries:
            mask = polygons_to_masks(polygon[None], (HEIGHT, WIDTH))[0]
            rle = mask_utils.encode(np.asfortranarray(mask))
            rle['counts'] = rle['counts'].decode()
            x1, y1, x2, y2 = mask_box(mask)
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=img_id,
                    category_id=cat_id,
                    segmentation=rle,
                    area=float(mask.sum()),
                    bbox=[x1, y1, x2 - x1 + 1, y2 - y1 + 1],
                    iscrowd=crowd,
                )
            )
    path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=CATEGORIES)))
    return str(path)


def make_sample(
    img_id: int, polygons: list[np.ndarray], labels: list[int], scores: list[float]
) -> dict:
    masks = polygons_to_masks(np.array(polygons).reshape(-1, 36, 2), (HEIGHT, WIDTH))
    sample = DetDataSample(metainfo=dict(img_id=img_id, ori_shape=(HEIGHT, WIDTH)))
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([mask_box(m) for m in masks], dtype=torch.float32).reshape(-1, 4),
        scores=torch.tensor(scores, dtype=torch.float32),
        labels=torch.tensor(labels, dtype=torch.long),
        polygons=torch.from_numpy(np.array(polygons, dtype=np.float32).reshape(-1, 36, 2)),
    )
    return sample.to_dict()


def perfect_samples(shift: float = 0.0) -> list[dict]:
    return [
        make_sample(
            img_id,
            [p + shift for p, _ in objects],
            [lab for _, lab in objects],
            [0.9 - 0.1 * i for i in range(len(objects))],
        )
        for img_id, objects in OBJECTS.items()
    ]


def run_metric(metric: CocoMetric, samples: list[dict]) -> dict:
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def direct_stats(gt_file: str, result_file: str, iou_type: str) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
        coco_eval = COCOeval(gt, gt.loadRes(result_file), iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats


def assert_matches_direct(results: dict, gt_file: str, prefix: str) -> None:
    for iou_type in ('segm', 'bbox'):
        stats = direct_stats(gt_file, f'{prefix}.{iou_type}.json', iou_type)
        names = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
        for index, name in enumerate(names):
            assert results[f'coco/{iou_type}_{name}'] == stats[index], (iou_type, name)


def test_perfect_predictions_give_ap_one(tmp_path):
    gt_file = write_gt(tmp_path / 'gt.json')
    prefix = str(tmp_path / 'out' / 'res')
    metric = CocoMetric(ann_file=gt_file, metric=['segm', 'bbox'], outfile_prefix=prefix)
    results = run_metric(metric, perfect_samples())
    assert results['coco/segm_mAP'] == pytest.approx(1.0)
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert_matches_direct(results, gt_file, prefix)


def test_shifted_predictions_score_lower_and_match_pycocotools(tmp_path):
    gt_file = write_gt(tmp_path / 'gt.json')
    prefix = str(tmp_path / 'res')
    metric = CocoMetric(ann_file=gt_file, metric=['segm', 'bbox'], outfile_prefix=prefix)
    results = run_metric(metric, perfect_samples(shift=4.0))
    assert 0.0 < results['coco/segm_mAP'] < 1.0
    assert 0.0 < results['coco/bbox_mAP'] < 1.0
    assert_matches_direct(results, gt_file, prefix)


def test_segm_json_format(tmp_path):
    gt_file = write_gt(tmp_path / 'gt.json')
    prefix = str(tmp_path / 'res')
    metric = CocoMetric(ann_file=gt_file, metric='segm', outfile_prefix=prefix, format_only=True)
    assert run_metric(metric, perfect_samples()) == {}
    segm = json.loads((tmp_path / 'res.segm.json').read_text())
    bbox = json.loads((tmp_path / 'res.bbox.json').read_text())
    assert len(segm) == len(bbox) == 5
    assert all('bbox' not in r and isinstance(r['segmentation']['counts'], str) for r in segm)
    assert {r['category_id'] for r in segm} == {3, 7}
    first = OBJECTS[1][0][0]
    x1, y1, x2, y2 = mask_box(polygons_to_masks(first[None], (HEIGHT, WIDTH))[0])
    assert bbox[0]['bbox'] == [x1, y1, x2 - x1 + 1, y2 - y1 + 1]
    assert bbox[0]['category_id'] == 3 and bbox[0]['image_id'] == 1


def test_crowd_gt_is_ignored(tmp_path):
    samples = perfect_samples()
    samples[0] = make_sample(1, [p for p, _ in OBJECTS[1]] + [CROWD], [0, 1, 1], [0.9, 0.8, 0.95])
    gt_crowd = write_gt(tmp_path / 'crowd.json', with_crowd=True)
    metric = CocoMetric(ann_file=gt_crowd, metric='segm', outfile_prefix=str(tmp_path / 'c'))
    crowd_results = run_metric(metric, samples)
    assert crowd_results['coco/segm_mAP'] == pytest.approx(1.0)
    assert_stats = direct_stats(gt_crowd, str(tmp_path / 'c.segm.json'), 'segm')
    assert crowd_results['coco/segm_mAP'] == assert_stats[0]

    # without the crowd region the same detection is a false positive ranked first
    gt_plain = write_gt(tmp_path / 'plain.json')
    plain = run_metric(CocoMetric(ann_file=gt_plain, metric='segm'), samples)
    assert plain['coco/segm_mAP'] < 1.0


def test_empty_results_give_zero(tmp_path):
    gt_file = write_gt(tmp_path / 'gt.json')
    metric = CocoMetric(ann_file=gt_file, metric=['segm', 'bbox'])
    empty = [make_sample(img_id, [], [], []) for img_id in OBJECTS]
    results = run_metric(metric, empty)
    assert len(results) == 12 and all(v == 0.0 for v in results.values())
    assert run_metric(CocoMetric(ann_file=gt_file), [])['coco/segm_mAP'] == 0.0


def test_faster_coco_eval_backend_matches(tmp_path):
    pytest.importorskip('faster_coco_eval', reason='the optional faster-coco-eval backend')
    gt_file = write_gt(tmp_path / 'gt.json')
    samples = perfect_samples(shift=3.0)
    reference = run_metric(CocoMetric(ann_file=gt_file, metric=['segm', 'bbox']), samples)
    faster = run_metric(
        CocoMetric(ann_file=gt_file, metric=['segm', 'bbox'], backend='faster-coco-eval'),
        perfect_samples(shift=3.0),
    )
    for key, value in reference.items():
        assert faster[key] == pytest.approx(value, abs=1e-6), key


def test_both_backends_log_the_summary_pycocotools_prints(tmp_path, monkeypatch):
    pytest.importorskip('faster_coco_eval', reason='the optional faster-coco-eval backend')
    gt_file = write_gt(tmp_path / 'gt.json')
    prefix = str(tmp_path / 'res')
    messages = []
    monkeypatch.setattr(coco_metric, 'print_log', lambda message, **_: messages.append(message))
    for backend in BACKENDS:
        metric = CocoMetric(ann_file=gt_file, backend=backend, outfile_prefix=prefix)
        run_metric(metric, perfect_samples(shift=3.0))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
        coco_eval = COCOeval(gt, gt.loadRes(f'{prefix}.segm.json'), 'segm')
        coco_eval.evaluate()
        coco_eval.accumulate()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        coco_eval.summarize()
    expected = printed.getvalue().rstrip('\n')
    assert len(expected.splitlines()) == 12
    summaries = [message for message in messages if message.startswith('CocoMetric segm')]
    assert summaries == [f'CocoMetric segm ({backend}):\n{expected}' for backend in BACKENDS]


def test_classes_from_dataset_meta_map_labels_by_name(tmp_path):
    gt_file = write_gt(tmp_path / 'gt.json')
    metric = CocoMetric(
        ann_file=gt_file, metric='segm', format_only=True, outfile_prefix=str(tmp_path / 'res')
    )
    metric.dataset_meta = dict(classes=('dog', 'cat'))
    run_metric(metric, [make_sample(1, [OBJECTS[1][0][0]], [0], [0.5])])
    segm = json.loads((tmp_path / 'res.segm.json').read_text())
    assert segm[0]['category_id'] == 7

    metric = CocoMetric(ann_file=gt_file)
    with pytest.raises(KeyError, match='horse'):
        metric.dataset_meta = dict(classes=('cat', 'horse'))


def test_ann_file_from_dataset_meta_and_label_check(tmp_path):
    gt_file = write_gt(tmp_path / 'gt.json')
    metric = CocoMetric(ann_file=None)
    metric.dataset_meta = dict(classes=('cat', 'dog'), ann_file=gt_file)
    assert run_metric(metric, perfect_samples())['coco/segm_mAP'] == pytest.approx(1.0)

    metric = CocoMetric(ann_file=gt_file)
    with pytest.raises(ValueError, match='num_classes'):
        run_metric(metric, [make_sample(1, [OBJECTS[1][0][0]], [2], [0.5])])


def test_classwise_table_lists_every_class(tmp_path):
    gt_file = write_gt(tmp_path / 'gt.json')
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
    metric = CocoMetric(ann_file=gt_file, outfile_prefix=str(tmp_path / 'res'))
    run_metric(metric, perfect_samples())
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(gt, gt.loadRes(str(tmp_path / 'res.segm.json')), 'segm')
        coco_eval.evaluate()
        coco_eval.accumulate()
    table = CocoMetric._classwise_table(coco_eval, gt, [3, 7])
    assert 'cat' in table and 'dog' in table and '1.000' in table


def test_invalid_arguments():
    with pytest.raises(ValueError, match='outfile_prefix'):
        CocoMetric(ann_file='x.json', format_only=True)
    with pytest.raises(KeyError, match='proposal'):
        CocoMetric(ann_file='x.json', metric='proposal')
    with pytest.raises(ValueError, match='backend'):
        CocoMetric(ann_file='x.json', backend='lvis')
    with pytest.raises(ValueError, match='.pkl'):
        DumpDetResults(out_file_path='results.json')


def test_dump_det_results_writes_pickle_atomically(tmp_path):
    out = tmp_path / 'sub' / 'res.pkl'
    metric = DumpDetResults(out_file_path=str(out))
    samples = perfect_samples()
    metric.process({}, samples)
    assert metric.evaluate(len(samples)) == {}
    assert [p.name for p in out.parent.iterdir()] == ['res.pkl']
    with open(out, 'rb') as f:
        dumped = pickle.load(f)
    assert [d['img_id'] for d in dumped] == [1, 2]
    first = dumped[0]
    assert first['ori_shape'] == (HEIGHT, WIDTH)
    assert first['polygons'].shape == (2, 36, 2) and first['labels'].tolist() == [0, 1]
    decoded = mask_utils.decode(first['masks'][0])
    expected = polygons_to_masks(OBJECTS[1][0][0][None], (HEIGHT, WIDTH))[0]
    np.testing.assert_array_equal(decoded, expected)

"""Per-image mask AP: 1 for exact predictions, and pycocotools' COCOeval of each image alone."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from polarmask.analysis.ground_truth import CocoGroundTruth
from polarmask.analysis.image_ap import image_ap, images_ap, top_k
from polarmask.datasets.shapes_generator import SHAPES_CLASSES
from tests.test_analysis.shapes_results import (
    coco_json_results,
    make_exact_shapes,
    make_record,
    perfect_results,
    perturbed_results,
)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('image_ap') / 'shapes'
    return root, make_exact_shapes(root)


def test_exact_predictions_give_ap_1(shapes):
    root, ann_file = shapes
    aps = images_ap(perfect_results(root), CocoGroundTruth(str(ann_file), SHAPES_CLASSES), 'x')
    assert aps.tolist() == pytest.approx([1.0] * 8, abs=1e-12)


def test_image_ap_is_cocoeval_of_the_image_alone(shapes, tmp_path):
    root, ann_file = shapes
    coco = json.loads(ann_file.read_text())
    for ann in coco['annotations'][::7]:  # some crowd regions, whose detections are ignored
        ann['iscrowd'] = 1
    crowd_file = tmp_path / 'crowd.json'
    crowd_file.write_text(json.dumps(coco))
    ground_truth = CocoGroundTruth(str(crowd_file), SHAPES_CLASSES)
    for seed in range(3):
        results = perturbed_results(root, seed)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(str(crowd_file))
            coco_dt = coco_gt.loadRes(coco_json_results(results))
        expected = []
        for record in results:
            coco_eval = COCOeval(coco_gt, coco_dt, 'segm')
            coco_eval.params.imgIds = [record['img_id']]
            with contextlib.redirect_stdout(io.StringIO()):
                coco_eval.evaluate()
                coco_eval.accumulate()
                coco_eval.summarize()
            expected.append(coco_eval.stats[0] if coco_eval.stats[0] > -1 else np.nan)
        aps = images_ap(results, ground_truth, 'x')
        assert np.nanmin(aps) < np.nanmax(aps) and (aps < 1).sum() > 3  # errors lower APs
        np.testing.assert_allclose(aps, expected, rtol=0, atol=1e-12)


def test_false_positives_of_absent_classes_do_not_count_and_no_ground_truth_is_nan(shapes):
    root, ann_file = shapes
    ground_truth = CocoGroundTruth(str(ann_file), SHAPES_CLASSES)
    record = perfect_results(root)[0]
    gt = ground_truth.image(record['img_id'])
    absent = sorted(set(range(len(SHAPES_CLASSES))) - set(gt.labels.tolist()))[0]
    fp = make_record(
        record['img_id'],
        record['img_path'],
        record['ori_shape'],
        [*record['polygons'], record['polygons'][0]],
        [*record['labels'].tolist(), absent],
        [0.5] * len(record['labels']) + [0.99],
    )
    (ap,) = images_ap([fp], ground_truth, 'x')
    assert ap == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(image_ap(np.zeros((1, 0)), [0], [0.9], np.zeros(0, int), np.zeros(0, bool)))


def test_top_k_ranks_by_ap_and_skips_images_without_ground_truth():
    aps = np.array([0.5, np.nan, 0.9, 0.1, 0.9, 0.3])
    good, bad = top_k(aps, 2)
    assert good.tolist() == [4, 2] and bad.tolist() == [3, 5]
    good, bad = top_k(aps, 10)
    assert good.tolist() == [4, 2, 0, 5, 3] and bad.tolist() == [3, 5, 0, 2, 4]

"""The --out pickle: DumpDetResults keeps the image path, old files get a clear message, and
offline evaluation gives the numbers of the test run."""

from __future__ import annotations

import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

from polarmask.analysis.results import (
    DRAWING_FIELDS,
    MATCHING_FIELDS,
    load_det_results,
    offline_evaluate,
)
from polarmask.datasets.shapes_generator import SHAPES_CLASSES
from polarmask.evaluation import CocoMetric, DumpDetResults
from polarmask.structures import DetDataSample
from polarmask.utils import register_all_modules
from tests.test_analysis.shapes_results import (
    make_exact_shapes,
    perfect_results,
    perturbed_results,
    write_pkl,
)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    register_all_modules()
    root = tmp_path_factory.mktemp('results') / 'shapes'
    return root, make_exact_shapes(root)


def data_samples(results: list[dict]) -> list[DetDataSample]:
    """The records as the model's outputs of a test run."""
    samples = []
    for record in results:
        sample = DetDataSample(
            metainfo=dict(
                img_id=record['img_id'], img_path=record['img_path'], ori_shape=record['ori_shape']
            )
        )
        sample.pred_instances = InstanceData(
            **{k: torch.from_numpy(record[k]) for k in ('bboxes', 'scores', 'labels', 'polygons')}
        )
        samples.append(sample)
    return samples


def shapes_config(ann_file, dump_file='never_written.pkl') -> Config:
    return Config(
        dict(
            model=dict(type='PolarMask'),
            test_dataloader=dict(dataset=dict(type='ShapesDataset')),
            test_evaluator=[
                dict(type='CocoMetric', ann_file=str(ann_file), metric=['segm', 'bbox']),
                dict(type='DumpDetResults', out_file_path=str(dump_file)),
            ],
        )
    )


def test_offline_evaluation_gives_the_numbers_of_the_test_run(shapes, tmp_path):
    root, ann_file = shapes
    samples = data_samples(perturbed_results(root))
    pkl = tmp_path / 'res.pkl'
    online = Evaluator(
        [
            CocoMetric(ann_file=str(ann_file), metric=['segm', 'bbox']),
            DumpDetResults(out_file_path=str(pkl)),
        ]
    )
    online.dataset_meta = dict(classes=SHAPES_CLASSES)
    online.process(samples)
    expected = online.evaluate(len(samples))
    results = load_det_results(str(pkl), MATCHING_FIELDS + DRAWING_FIELDS)
    assert [r['img_path'] for r in results] == [s.img_path for s in samples]
    offline = offline_evaluate(shapes_config(ann_file, tmp_path / 'never_written.pkl'), results)
    assert offline == expected and 0.2 < offline['coco/segm_mAP'] < 0.9
    assert not (tmp_path / 'never_written.pkl').exists()


def test_exact_predictions_give_ap_1(shapes, tmp_path):
    root, ann_file = shapes
    results = load_det_results(str(write_pkl(tmp_path / 'res.pkl', perfect_results(root))))
    metrics = offline_evaluate(shapes_config(ann_file), results)
    assert metrics['coco/segm_mAP'] == 1.0 and metrics['coco/bbox_mAP'] == 1.0


def test_files_without_a_field_name_it_and_the_fix(shapes, tmp_path):
    root, _ = shapes
    old = [{k: v for k, v in r.items() if k != 'img_path'} for r in perfect_results(root)]
    path = str(write_pkl(tmp_path / 'old.pkl', old))
    assert len(load_det_results(path, MATCHING_FIELDS)) == len(old)  # still readable
    with pytest.raises(KeyError, match=r"result 0 \(image id 1\) has no 'img_path'.*--out"):
        load_det_results(path, MATCHING_FIELDS + DRAWING_FIELDS)
    with open(tmp_path / 'dict.pkl', 'wb') as file:
        pickle.dump(dict(a=1), file)
    with pytest.raises(ValueError, match='not the list of per-image result dicts'):
        load_det_results(str(tmp_path / 'dict.pkl'))
    with pytest.raises(FileNotFoundError, match='tools/test.py CONFIG CHECKPOINT --out'):
        load_det_results(str(tmp_path / 'missing.pkl'))

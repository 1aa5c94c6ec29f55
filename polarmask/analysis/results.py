"""The ``--out`` pickle of ``tools/test.py``: reading it back and evaluating it offline.

The file is a list with one dict per image, written by
:class:`~polarmask.evaluation.DumpDetResults` (its docstring lists the fields). Files written
before ``img_path`` was added lack that field; every reader names the fields it needs and says
how to get a file that has them.

Naming convention for shapes: n detections of one image, R polygon vertices.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from typing import Any

from mmengine.config import Config
from mmengine.evaluator import Evaluator

from polarmask.analysis.ground_truth import config_dataset_meta
from polarmask.registry import METRICS

EVALUATION_FIELDS = ('img_id', 'ori_shape', 'bboxes', 'scores', 'labels', 'polygons')
"""What the config's metrics read from each record (``CocoMetric`` rasterises the polygons)."""
MATCHING_FIELDS = ('img_id', 'scores', 'labels', 'masks')
"""What matching predictions to ground truth reads (per-image AP, confusion matrix)."""
DRAWING_FIELDS = ('img_path', 'polygons')
"""What drawing a record on its image reads, besides :data:`MATCHING_FIELDS`."""


def load_det_results(path: str, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Read a ``tools/test.py --out`` pickle and check that every record has ``required``.

    Args:
        path: the ``.pkl`` file.
        required: fields every record must have (not None), e.g. :data:`MATCHING_FIELDS`.

    Returns:
        list[dict]: one record per image, in the order of the test run.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a list of result dicts.
        KeyError: naming the first record without a required field and the command that
            writes a file with it.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"results file '{path}' does not exist: write it with "
            f'tools/test.py CONFIG CHECKPOINT --out {path}'
        )
    with open(path, 'rb') as file:
        results = pickle.load(file)
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ValueError(
            f"'{path}' holds a {type(results).__name__}, not the list of per-image result dicts "
            'that tools/test.py --out writes'
        )
    for index, record in enumerate(results):
        missing = [key for key in required if record.get(key) is None]
        if missing:
            raise KeyError(
                f"'{path}': result {index} (image id {record.get('img_id', '?')}) has no "
                f'{", ".join(map(repr, missing))}: the file was written by an older version or '
                'from images given as arrays; write it again with '
                f'tools/test.py CONFIG CHECKPOINT --out {path}'
            )
    return results


def results_to_samples(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as the data-sample dicts that metrics' ``process`` receives in a test run.

    Args:
        results: records of :func:`load_det_results` with :data:`EVALUATION_FIELDS`.

    Returns:
        list[dict]: ``img_id``, ``img_path``, ``ori_shape`` and ``pred_instances`` (``bboxes``
        (n, 4), ``scores`` (n,), ``labels`` (n,), ``polygons`` (n, R, 2)) per image.
    """
    return [
        dict(
            img_id=record['img_id'],
            img_path=record.get('img_path'),
            ori_shape=record['ori_shape'],
            pred_instances={key: record[key] for key in ('bboxes', 'scores', 'labels', 'polygons')},
        )
        for record in results
    ]


def offline_evaluate(cfg: Config, results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Evaluate saved results with the config's ``test_evaluator``, as ``tools/test.py`` would.

    Each metric gets the records through its ``process``, exactly as in a test run, so the
    numbers are those of ``tools/test.py --eval``. ``DumpDetResults`` entries are skipped (the
    results are already saved). The metrics' ``dataset_meta`` is
    :func:`~polarmask.analysis.ground_truth.config_dataset_meta` of the config.

    Args:
        cfg: a detector config (``polarmask.utils.config.load_config``).
        results: records of :func:`load_det_results` with :data:`EVALUATION_FIELDS`.

    Returns:
        dict: the metrics, e.g. ``coco/segm_mAP``.

    Raises:
        KeyError: the config has no ``test_evaluator`` to evaluate with.
    """
    evaluators = cfg.get('test_evaluator')
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    metrics = [
        METRICS.build(dict(metric))
        for metric in evaluators or []
        if metric.get('type') != 'DumpDetResults'
    ]
    if not metrics:
        raise KeyError(
            f"config '{cfg.filename}' has no test_evaluator metric to evaluate with: add e.g. "
            "test_evaluator = dict(type='CocoMetric', metric='segm')"
        )
    evaluator = Evaluator(metrics)
    evaluator.dataset_meta = config_dataset_meta(cfg)
    return evaluator.offline_evaluate(results_to_samples(results), chunk_size=64)

"""Confusion matrix: exact predictions are diagonal; each kind of error lands in its cell."""

from __future__ import annotations

import numpy as np
import pytest

from polarmask.analysis.confusion_matrix import (
    confusion_matrix,
    image_confusion,
    row_percentages,
    save_confusion_matrix,
)
from polarmask.analysis.ground_truth import CocoGroundTruth
from polarmask.datasets.shapes_generator import SHAPES_CLASSES
from tests.test_analysis.shapes_results import (
    ground_truth_instances,
    make_exact_shapes,
    make_record,
    perfect_results,
    perturbed_results,
)

BACKGROUND = len(SHAPES_CLASSES)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('confusion') / 'shapes'
    ann_file = make_exact_shapes(root)
    return root, CocoGroundTruth(str(ann_file), SHAPES_CLASSES)


def gt_counts(root) -> np.ndarray:
    labels = [label for image in ground_truth_instances(root) for label in image['labels']]
    return np.bincount(labels, minlength=len(SHAPES_CLASSES))


def edited(image: dict, index: int, **changes) -> dict:
    """The exact record of ``image`` with instance ``index`` changed: ``label``, ``drop``,
    ``duplicate`` (a copy at that score)."""
    polygons, labels = list(image['polygons']), list(image['labels'])
    scores = [0.9] * len(labels)
    if 'label' in changes:
        labels[index] = changes['label']
    if 'duplicate' in changes:
        polygons.append(polygons[index])
        labels.append(labels[index])
        scores.append(changes['duplicate'])
    if changes.get('drop'):
        del polygons[index], labels[index], scores[index]
    return make_record(image['img_id'], image['img_path'], image['shape'], polygons, labels, scores)


def test_exact_predictions_give_a_diagonal_of_the_instance_counts(shapes):
    root, ground_truth = shapes
    matrix = confusion_matrix(perfect_results(root), ground_truth, 'x')
    expected = np.diag(np.append(gt_counts(root), 0))
    np.testing.assert_array_equal(matrix, expected)


@pytest.mark.parametrize(
    'change, cell',
    [
        (dict(label='other'), ('label', 'other')),  # a confusion, off the diagonal
        (dict(drop=True), ('label', BACKGROUND)),  # missed: the background column
        (dict(duplicate=0.8), (BACKGROUND, 'label')),  # duplicate: the background row
        (dict(duplicate=0.2), None),  # below --score-thr: not counted
    ],
)
def test_each_error_lands_in_its_cell(shapes, change, cell):
    root, ground_truth = shapes
    images = ground_truth_instances(root)
    image = images[1]
    label = image['labels'][0]
    other = (label + 3) % len(SHAPES_CLASSES)
    change = {k: other if v == 'other' else v for k, v in change.items()}
    results = perfect_results(root)
    results[1] = edited(image, 0, **change)
    matrix = confusion_matrix(results, ground_truth, 'x', score_thr=0.3, tp_iou_thr=0.5)
    expected = np.diag(np.append(gt_counts(root), 0))
    if cell is not None:
        row, column = (other if c == 'other' else label if c == 'label' else c for c in cell)
        expected[row, column] += 1
        if row != BACKGROUND:
            expected[label, label] -= 1
    np.testing.assert_array_equal(matrix, expected)


def test_rows_count_every_instance_once_whatever_the_errors(shapes):
    root, ground_truth = shapes
    for seed in range(3):
        results = perturbed_results(root, seed)
        matrix = confusion_matrix(results, ground_truth, 'x', score_thr=0.0)
        np.testing.assert_array_equal(matrix[:BACKGROUND].sum(axis=1), gt_counts(root))
        num_dets = sum(len(record['labels']) for record in results)
        assert matrix[:, :BACKGROUND].sum() == num_dets  # nothing lies on a crowd region here
        assert matrix[BACKGROUND].sum() > 0 and np.trace(matrix) < gt_counts(root).sum()
        assert matrix[:BACKGROUND, :BACKGROUND].sum() > np.trace(matrix)  # confusions too


def test_own_class_first_then_crowd_regions_ignored():
    # det 0 (class 0) overlaps gt 0 (class 1) most, but gt 1 (its own class) enough;
    # det 1 overlaps only the crowd region gt 2; det 2 overlaps nothing.
    ious = np.array([[0.8, 0.6, 0.0], [0.0, 0.0, 0.7], [0.1, 0.0, 0.0]])
    matrix = image_confusion(
        ious,
        dt_labels=np.array([0, 1, 1]),
        dt_scores=np.array([0.9, 0.8, 0.7]),
        gt_labels=np.array([1, 0, 1]),
        gt_crowd=np.array([False, False, True]),
        num_classes=2,
    )
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])


def test_numbers_are_written_as_csv_and_json(tmp_path):
    matrix = np.array([[3, 1, 0], [0, 2, 1], [1, 0, 0]])
    files = save_confusion_matrix(matrix, ['a', 'b', 'background'], str(tmp_path), dict(x=1))
    assert [p.rsplit('/', 1)[-1] for p in files] == [
        'confusion_matrix.csv',
        'confusion_matrix.json',
    ]
    lines = (tmp_path / 'confusion_matrix.csv').read_text().splitlines()
    assert lines == [
        'ground truth \\ prediction,a,b,background',
        'a,3,1,0',
        'b,0,2,1',
        'background,1,0,0',
    ]
    percentages = row_percentages(matrix)
    np.testing.assert_allclose(percentages[0], [75, 25, 0])
    assert np.isnan(row_percentages(np.zeros((2, 2)))).all()

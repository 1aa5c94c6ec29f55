"""COCO error analysis: each kind of error opens the gap between its two curves, and only it."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from pycocotools.coco import COCO

from polarmask.analysis.error_analysis import (
    AREA_NAMES,
    ERROR_TYPES,
    error_breakdown,
    load_coco,
    save_error_breakdown,
)
from polarmask.analysis.plotting import optional_pyplot
from polarmask.datasets.shapes_generator import SHAPES_CLASSES
from tests.test_analysis.shapes_results import (
    coco_json_results,
    ground_truth_instances,
    make_exact_shapes,
    make_record,
    perfect_results,
)

ELLIPSE, TRIANGLE, RECTANGLE, HEXAGON, STAR, CROSS = range(6)
ALL_AREAS = AREA_NAMES.index('allarea')


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('error_analysis') / 'shapes'
    return root, make_exact_shapes(root)


def breakdown_of(ann_file, results):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(ann_file))
        coco_dt = coco_gt.loadRes(coco_json_results(results))
    return error_breakdown(coco_gt, coco_dt, 'segm')


def aps(breakdown, category) -> dict[str, float]:
    curves = breakdown.curves(category, ALL_AREAS)
    return {name: float(curve.mean()) for name, curve in zip(ERROR_TYPES, curves, strict=True)}


def with_errors(root) -> list[dict]:
    """Exact results but for one instance of each of four classes: a triangle predicted as a
    rectangle (same supercategory 'convex'), an ellipse as a star (another supercategory), a
    hexagon shrunk to 0.6 of its size (mask IoU about 0.36) and a cross missed. The wrong
    labels score highest, so they cost precision."""
    edits = {TRIANGLE: 'as_rectangle', ELLIPSE: 'as_star', HEXAGON: 'shrink', CROSS: 'drop'}
    results = []
    for image in ground_truth_instances(root):
        polygons, labels, scores = [], [], []
        for polygon, label in zip(image['polygons'], image['labels'], strict=True):
            edit, score = edits.pop(label, None), 0.9
            if edit == 'drop':
                continue
            if edit == 'shrink':
                centre = polygon.mean(axis=0)
                polygon = centre + (polygon - centre) * 0.6
            if edit in ('as_rectangle', 'as_star'):
                label, score = (RECTANGLE if edit == 'as_rectangle' else STAR), 0.99
            polygons.append(polygon)
            labels.append(label)
            scores.append(score)
        results.append(
            make_record(
                image['img_id'], image['img_path'], image['shape'], polygons, labels, scores
            )
        )
    assert not edits  # every class was found
    return results


def test_exact_results_fill_every_curve(shapes):
    root, ann_file = shapes
    breakdown = breakdown_of(ann_file, perfect_results(root))
    assert breakdown.class_names == list(SHAPES_CLASSES)
    for category in (None, *range(len(SHAPES_CLASSES))):
        assert aps(breakdown, category) == pytest.approx(dict.fromkeys(ERROR_TYPES, 1.0))


def test_each_error_is_forgiven_by_its_own_curve(shapes):
    root, ann_file = shapes
    breakdown = breakdown_of(ann_file, with_errors(root))
    rectangle, star = aps(breakdown, RECTANGLE), aps(breakdown, STAR)
    hexagon, cross = aps(breakdown, HEXAGON), aps(breakdown, CROSS)
    # a triangle called a rectangle: a confusion within the supercategory
    assert rectangle['Loc'] < 1 and rectangle['Sim'] == pytest.approx(1)
    # an ellipse called a star: a confusion across supercategories
    assert star['Sim'] < 1 and star['Oth'] == pytest.approx(1)
    # a shrunk hexagon: a localisation error
    assert hexagon['C50'] < 1 and hexagon['Loc'] == pytest.approx(1)
    # a missed cross: only FN reaches 1; without false positives, Oth and BG are equal
    assert cross['BG'] == pytest.approx(cross['Oth']) and cross['Oth'] < 1 == cross['FN']
    num_crosses = sum(image['labels'].count(CROSS) for image in ground_truth_instances(root))
    assert cross['Oth'] == pytest.approx((num_crosses - 1) / num_crosses, abs=0.01)
    overall = aps(breakdown, None)
    assert overall['C75'] <= overall['C50'] < overall['Loc'] < overall['Sim'] < overall['Oth']
    assert overall['Oth'] < overall['FN'] == 1


def test_figures_and_numbers(shapes, tmp_path):
    root, ann_file = shapes
    breakdown = breakdown_of(ann_file, with_errors(root))
    written = save_error_breakdown(breakdown, str(tmp_path / 'numbers'), 'segm', None)
    assert [p.rsplit('/', 1)[-1] for p in written] == ['error_analysis.json']
    numbers = json.loads((tmp_path / 'numbers' / 'error_analysis.json').read_text())
    assert numbers['iou_type'] == 'segm' and numbers['error_types'] == list(ERROR_TYPES)
    star = numbers['classes']['star']['allarea']
    assert star['ap']['Oth'] == pytest.approx(1) and len(star['precision']['Sim']) == 101
    assert numbers['classes']['allclass']['large'] is None  # no large shape in 96x128 images

    plt = optional_pyplot()
    if plt is None:
        pytest.skip('matplotlib is not installed')
    written = save_error_breakdown(breakdown, str(tmp_path / 'figures'), 'segm', plt)
    names = {p.rsplit('/', 1)[-1] for p in written}
    assert {'segm-allclass-allarea.png', 'segm-star-allarea.png', 'error_analysis.json'} <= names
    assert not any(name.endswith('-large.png') for name in names)
    assert (tmp_path / 'figures' / 'segm-allclass-allarea.png').read_bytes()[:4] == b'\x89PNG'


def test_result_json_of_unknown_images_is_refused(shapes, tmp_path):
    _, ann_file = shapes
    result = tmp_path / 'res.segm.json'
    result.write_text(json.dumps([dict(image_id=999, category_id=1, bbox=[0, 0, 5, 5], score=1)]))
    with pytest.raises(ValueError, match=r'image ids \[999\] are not in'):
        load_coco(str(ann_file), str(result))
    result.write_text('[]')
    with pytest.raises(ValueError, match='no result records'):
        load_coco(str(ann_file), str(result))

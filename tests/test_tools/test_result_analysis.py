"""tools/analysis_tools: eval_metric, analyze_results, confusion_matrix and coco_error_analysis
on a results pickle of generated images; tools/misc/print_config."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.test_analysis.shapes_results import (
    IMAGE_SIZE,
    ground_truth_instances,
    make_exact_shapes,
    make_record,
    perfect_results,
    write_pkl,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / 'configs/polarmask/demo/polar_shapes_r18.py')


def load_tool(folder: str, name: str):
    spec = importlib.util.spec_from_file_location(
        f'{folder}_{name}', ROOT / 'tools' / folder / f'{name}.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eval_metric = load_tool('analysis_tools', 'eval_metric')
analyze_results = load_tool('analysis_tools', 'analyze_results')
confusion_matrix = load_tool('analysis_tools', 'confusion_matrix')
coco_error_analysis = load_tool('analysis_tools', 'coco_error_analysis')
print_config = load_tool('misc', 'print_config')


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    """The data, the --cfg-options that point the demo config at it, and a pickle of exact
    results but for image 3, whose first instance of three is missed (AP 0.752), and image 5,
    whose instances are missed but the first of four (AP 0.252)."""
    root = tmp_path_factory.mktemp('tools') / 'shapes'
    ann_file = make_exact_shapes(root)
    results = perfect_results(root)
    for index, keep in ((2, slice(1, None)), (4, slice(0, 1))):
        image = ground_truth_instances(root)[index]
        results[index] = make_record(
            image['img_id'],
            image['img_path'],
            image['shape'],
            image['polygons'][keep],
            image['labels'][keep],
        )
    pkl = write_pkl(root.parent / 'res.pkl', results)
    options = [
        '--cfg-options',
        f'test_dataloader.dataset.data_root={root}/',
        f'test_evaluator.ann_file={ann_file}',
    ]
    return root, ann_file, pkl, options


def test_eval_metric_evaluates_the_pickle(shapes, tmp_path, capsys):
    _, _, pkl, options = shapes
    prefix = tmp_path / 'res'
    argv = [DEMO, str(pkl), *options, f'test_evaluator.outfile_prefix={prefix}']
    assert eval_metric.main(argv) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = eval(printed)  # the printed dict
    assert 0.7 < metrics['coco/segm_mAP'] < 1 and metrics['coco/segm_mAP_50'] < 1
    assert (tmp_path / 'res.segm.json').is_file()


def test_analyze_results_draws_the_best_and_the_worst(shapes, tmp_path, capsys):
    _, _, pkl, options = shapes
    assert analyze_results.main([DEMO, str(pkl), str(tmp_path), '--topk', '2', *options]) == 0
    good = sorted(p.name for p in (tmp_path / 'good').iterdir())
    bad = sorted(p.name for p in (tmp_path / 'bad').iterdir())
    assert len(good) == 2 and all(name.endswith('_1.000.png') for name in good)
    assert bad == ['000003.jpg_0.752.png', '000005.jpg_0.252.png']
    height, width = IMAGE_SIZE
    drawn = cv2.imread(str(tmp_path / 'bad' / bad[1]))
    assert drawn.shape == (height, 2 * width, 3)  # ground truth | predictions
    original = cv2.imread(str(shapes[0] / 'val' / '000005.jpg'))
    changed = np.abs(drawn.astype(int) - np.concatenate((original, original), axis=1)).sum(2) > 0
    assert changed[:, :width].mean() > changed[:, width:].mean() > 0  # more ground truth drawn
    out = capsys.readouterr().out
    assert 'mask AP of 8 images' in out and '2 worst (image id: AP): 5: 0.252, 3: 0.752' in out


def test_analyze_results_names_what_an_old_pickle_lacks(shapes, tmp_path, capsys):
    root, _, _, options = shapes
    old = [{k: v for k, v in r.items() if k != 'img_path'} for r in perfect_results(root)]
    pkl = write_pkl(tmp_path / 'old.pkl', old)
    with pytest.raises(SystemExit) as exit_info:
        analyze_results.main([DEMO, str(pkl), str(tmp_path / 'show'), *options])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "has no 'img_path'" in error and 'tools/test.py CONFIG CHECKPOINT --out' in error


@pytest.mark.parametrize('matplotlib', [True, False])
def test_confusion_matrix_writes_numbers_and_plot(
    shapes, tmp_path, capsys, monkeypatch, matplotlib
):
    _, _, pkl, options = shapes
    if not matplotlib:
        monkeypatch.setattr(confusion_matrix, 'optional_pyplot', lambda interactive: None)
    assert confusion_matrix.main([DEMO, str(pkl), str(tmp_path), *options]) == 0
    numbers = json.loads((tmp_path / 'confusion_matrix.json').read_text())
    counts = np.array(numbers['counts'])
    assert numbers['labels'][-1] == 'background' and numbers['score_thr'] == 0.3
    missed = 1 + 3  # images 3 and 5
    assert counts[:-1, -1].sum() == missed and counts[-1].sum() == 0
    assert np.trace(counts) + missed == counts.sum()  # nothing else is off the diagonal
    out = capsys.readouterr().out
    assert (tmp_path / 'confusion_matrix.png').exists() == matplotlib
    assert ('matplotlib is not installed' in out) != matplotlib
    assert '| background' in out


def test_coco_error_analysis_of_the_result_json(shapes, tmp_path, capsys):
    _, ann_file, pkl, options = shapes
    prefix = tmp_path / 'res'
    eval_metric.main([DEMO, str(pkl), *options, f'test_evaluator.outfile_prefix={prefix}'])
    out_dir = tmp_path / 'errors'
    argv = [f'{prefix}.segm.json', str(out_dir), '--ann', str(ann_file), '--types', 'segm', 'bbox']
    assert coco_error_analysis.main(argv) == 0
    for iou_type in ('segm', 'bbox'):
        assert (out_dir / iou_type / 'error_analysis.json').is_file()
        assert (out_dir / iou_type / f'{iou_type}-allclass-allarea.png').is_file()
    table = capsys.readouterr().out
    # every detection is exact, so only missed instances are errors
    segm = next(line for line in table.splitlines() if line.startswith('| segm'))
    values = [float(v) for v in segm.strip('| ').split('|')[1:]]
    assert values[:6] == [values[0]] * 6 and values[0] < 1 and values[6] == 1


def test_print_config_prints_the_merged_config(capsys):
    assert print_config.main([DEMO, '--cfg-options', 'model.test_cfg.score_thr=0.42']) == 0
    out = capsys.readouterr().out
    assert out.startswith('Config:\n') and 'score_thr=0.42' in out
    assert "type='PlainCheckpointHook'" in out  # from _base_/default_runtime.py

"""``tools/dist_train.sh`` and ``tools/dist_test.sh`` run 2 real gloo processes on the CPU.

The 2-process test of a checkpoint gives the same segm AP and the same per-image results as
testing it in one process.
"""

import math
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from tests.test_distributed.tiny import (
    CONFIG,
    NUM_VAL,
    data_options,
    environment,
    free_port,
    last_checkpoint,
    load,
    run,
)

_METRIC = re.compile(r'(coco/segm_mAP\w*): (-?[\d.]+)')


def test_dist_train_trains_two_gloo_processes(uninterrupted: Path):
    log = (uninterrupted / 'train.log').read_text()
    assert 'Distributed launcher: pytorch' in log
    # 12 images at 2 per process make 3 iterations per epoch only when 2 processes share them.
    assert re.search(r'Epoch\(train\)\s+\[2\]\[3/3\]', log), log[-2000:]
    assert not re.search(r'\[\d/6\]', log)
    final = last_checkpoint(uninterrupted)
    assert final.name == 'iter_6.pth'
    assert (uninterrupted / 'latest.pth').resolve() == final.resolve()
    meta = load(final)['meta']
    assert (meta['epoch'], meta['iter']) == (1, 6)
    assert len(meta['rng_states']) == 2


def _probe_checkpoint(trained: Path, out: Path) -> Path:
    """The trained weights with ray lengths of 18 px (the tiny objects' radius): AP > 0. (The
    demo head has no box branch: its boxes are the polygons' tight boxes.)"""
    state_dict = load(trained)['state_dict']
    name = 'bbox_head.polar_mask.bias'
    state_dict[name] = torch.full_like(state_dict[name], math.log(18.0))
    torch.save(dict(state_dict=state_dict, meta=dict()), out)
    return out


def _metrics(log: Path) -> dict[str, float]:
    lines = [line for line in log.read_text().splitlines() if 'Epoch(test)' in line]
    assert lines, f'no test metrics in {log}'
    return {name: float(value) for name, value in _METRIC.findall(lines[-1])}


def _results(path: Path) -> dict[int, dict]:
    with open(path, 'rb') as file:
        results = pickle.load(file)
    ids = [result['img_id'] for result in results]
    assert sorted(ids) == list(range(1, NUM_VAL + 1)), f'{path}: image ids {ids}'
    return {result['img_id']: result for result in results}


def test_dist_test_equals_single_process_test(uninterrupted: Path, tiny_data: Path, tmp_path):
    checkpoint = _probe_checkpoint(uninterrupted / 'iter_6.pth', tmp_path / 'probe.pth')
    # Every location scores, so every image has max_per_img detections to compare.
    options = ['--cfg-options', *data_options(tiny_data), 'model.test_cfg.score_thr=0.0']
    two, one = tmp_path / 'two', tmp_path / 'one'
    run(
        ['sh', 'tools/dist_test.sh', CONFIG, str(checkpoint), '2', '--work-dir', str(two)]
        + ['--out', str(two / 'res.pkl'), '--eval', 'segm', *options],
        tmp_path / 'two.log',
        environment(PORT=str(free_port())),
    )
    run(
        ['python', 'tools/test.py', CONFIG, str(checkpoint), '--work-dir', str(one)]
        + ['--out', str(one / 'res.pkl'), '--eval', 'segm', *options],
        tmp_path / 'one.log',
        environment(),
    )

    metrics = _metrics(tmp_path / 'two.log')
    assert metrics == _metrics(tmp_path / 'one.log')
    assert metrics['coco/segm_mAP_50'] > 0, metrics
    results_two, results_one = _results(two / 'res.pkl'), _results(one / 'res.pkl')
    for img_id, result in results_one.items():
        other = results_two[img_id]
        assert len(result['scores']) > 0
        assert other['ori_shape'] == result['ori_shape']
        assert other['masks'] == result['masks'], f'image {img_id}: masks differ'
        for key in ('bboxes', 'scores', 'labels', 'polygons'):
            assert np.array_equal(other[key], result[key]), f'image {img_id}: {key} differ'

"""PolarMaskInferencer: inputs of every kind, mmdetection's output layout, unreadable files, and
checkpoints that carry their config."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from polarmask.apis import PolarMaskInferencer, draw_result, inference_detector, init_detector
from polarmask.apis import inferencer as inferencer_module
from tests.test_apis.demo_model import CONFIG


def random_image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def inferencer(checkpoint: Path) -> PolarMaskInferencer:
    return PolarMaskInferencer(CONFIG, checkpoint, show_progress=False)


def with_config(checkpoint: Path, path: Path) -> Path:
    """The checkpoint with the demo config embedded as tools/train.py embeds it."""
    saved = torch.load(checkpoint, weights_only=True)
    saved['meta']['cfg'] = Config.fromfile(CONFIG).pretty_text
    torch.save(saved, path)
    return path


def assert_same(result, expected) -> None:
    np.testing.assert_array_equal(result.bboxes, expected.bboxes)
    np.testing.assert_array_equal(result.scores, expected.scores)
    np.testing.assert_array_equal(result.polygons, expected.polygons)
    assert result.masks == expected.masks


def test_inputs_of_every_kind_and_the_output_layout(inferencer, tmp_path):
    folder = tmp_path / 'images'
    (folder / 'sub').mkdir(parents=True)
    cv2.imwrite(str(folder / 'a.png'), random_image(64, 96, 0))
    cv2.imwrite(str(folder / 'sub' / 'b.jpg'), random_image(80, 48, 1))
    (folder / 'notes.txt').write_text('not an image, not listed')
    arrays = [random_image(40, 60, 2), random_image(50, 30, 3)]
    out = tmp_path / 'out'
    results = inferencer(
        [str(folder), *arrays], out_dir=str(out), no_save_pred=False, return_vis=True
    )
    inputs = [str(folder / 'a.png'), str(folder / 'sub' / 'b.jpg'), *arrays]
    assert len(results['predictions']) == len(results['visualization']) == 4
    assert results['skipped'] == []
    for result, image in zip(results['predictions'], inputs, strict=True):
        assert_same(result, inference_detector(inferencer.model, image))
    assert results['predictions'][0].img_path == inputs[0]
    assert results['predictions'][2].img_path is None
    names = ['a.png', 'sub/b.jpg', '00000000', '00000001']
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*.*')) == sorted(
        [f'vis/{name}.png' for name in names] + [f'preds/{name}.json' for name in names]
    )
    for name, result, drawn in zip(
        names, results['predictions'], results['visualization'], strict=True
    ):
        np.testing.assert_array_equal(cv2.imread(str(out / 'vis' / f'{name}.png')), drawn)
        record = json.loads((out / 'preds' / f'{name}.json').read_text())
        selected = result.select(0.3)
        assert record['score_thr'] == 0.3 and record['scores'] == selected.scores.tolist()
        assert record['masks'] == selected.masks
    array_image = arrays[0]
    np.testing.assert_array_equal(
        results['visualization'][2],
        draw_result(array_image, results['predictions'][2], 0.3, inferencer.palette),
    )
    # Arrays are numbered over the inferencer's life; predictions are not saved by default.
    again = tmp_path / 'again'
    assert len(inferencer(arrays[0], out_dir=str(again))['predictions']) == 1
    assert [p.name for p in again.rglob('*.*')] == ['00000002.png']
    # Nothing is written without out_dir.
    assert inferencer(str(folder / 'a.png'))['visualization'] == []


def test_unreadable_files_are_reported_and_skipped(inferencer, tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(
        inferencer_module, 'print_log', lambda message, **kw: logged.append(message)
    )
    folder = tmp_path / 'images'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), random_image(64, 96, 0))
    (folder / 'b.png').write_bytes(b'not a png')
    (folder / 'c.jpg').write_bytes(b'')
    cv2.imwrite(str(folder / 'd.png'), random_image(32, 32, 1))
    out = tmp_path / 'out'
    results = inferencer(str(folder), batch_size=2, out_dir=str(out), no_save_pred=False)
    assert [r.img_path for r in results['predictions']] == [
        str(folder / 'a.png'),
        str(folder / 'd.png'),
    ]
    assert [path for path, _ in results['skipped']] == [
        str(folder / 'b.png'),
        str(folder / 'c.jpg'),
    ]
    assert all('is not an image OpenCV can decode' in str(e) for _, e in results['skipped'])
    assert sorted(p.name for p in (out / 'preds').iterdir()) == ['a.png.json', 'd.png.json']
    assert len(logged) == 2 and all(m.startswith('skipped: inference_detector:') for m in logged)
    with pytest.raises(ValueError, match=r"'.*b\.png' \(9 bytes\) is not an image"):
        inferencer(str(folder / 'b.png'))  # nothing could be read
    with pytest.raises(FileNotFoundError, match=r"input '.*nope' does not exist"):
        inferencer(str(tmp_path / 'nope'))
    with pytest.raises(ValueError, match=r'image 0 is an array of shape \(8, 8, 4\)'):
        inferencer([np.zeros((8, 8, 4), np.uint8)])  # arrays are the caller's: no skipping


def test_progress_bar_over_a_folder(checkpoint, tmp_path, capsys):
    for index in range(3):
        cv2.imwrite(str(tmp_path / f'{index}.png'), random_image(32, 32, index))
    PolarMaskInferencer(CONFIG, checkpoint)(str(tmp_path))
    assert 'Inference' in capsys.readouterr().out
    PolarMaskInferencer(CONFIG, checkpoint)(str(tmp_path / '0.png'))
    assert 'Inference' not in capsys.readouterr().out  # one image: no bar


def test_a_checkpoint_that_carries_its_config_is_enough(checkpoint, tmp_path):
    published = with_config(checkpoint, tmp_path / 'published.pth')
    img = random_image(64, 96, 5)
    expected = inference_detector(init_detector(CONFIG, checkpoint), img)
    for model in (init_detector(published), init_detector(None, published)):
        assert model.cfg.filename == f'{published} (embedded config)'
        assert_same(inference_detector(model, img), expected)
    alone = PolarMaskInferencer(published, show_progress=False)
    assert_same(alone(img)['predictions'][0], expected)
    options = {'model.test_cfg.score_thr': 0.99}
    assert init_detector(published, cfg_options=options).cfg.model.test_cfg.score_thr == 0.99


def test_a_checkpoint_without_config_names_the_fix(checkpoint, tmp_path):
    with pytest.raises(KeyError, match=r"'.*demo\.pth' carries no config.*publish_model\.py"):
        init_detector(checkpoint)
    with pytest.raises(ValueError, match='two checkpoints'):
        init_detector(checkpoint, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='no config and no checkpoint'):
        init_detector()

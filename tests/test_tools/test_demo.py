"""demo/image_demo.py and demo/video_demo.py on a folder of images and a generated video."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from pycocotools import mask as mask_utils

from polarmask.apis import inference_detector, init_detector
from polarmask.datasets.shapes_generator import SHAPES_CLASSES
from polarmask.visualization import display
from tests.test_apis.demo_model import CONFIG, write_demo_checkpoint

REPO = Path(__file__).resolve().parents[2]


def load_script(relative_path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(relative_path).stem, REPO / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


image_demo = load_script('demo/image_demo.py')
video_demo = load_script('demo/video_demo.py')


def random_image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_demo_checkpoint(tmp_path_factory.mktemp('checkpoint') / 'demo.pth'))


def test_image_demo_writes_a_drawing_and_a_json_per_image(tmp_path, checkpoint):
    inputs = tmp_path / 'inputs'
    (inputs / 'sub').mkdir(parents=True)
    images = {'a': random_image(96, 128, 0), 'sub/b': random_image(150, 90, 1)}
    cv2.imwrite(str(inputs / 'a.png'), images['a'])
    cv2.imwrite(str(inputs / 'sub' / 'b.png'), images['sub/b'])
    (inputs / 'readme.txt').write_text('not an image, not listed')
    out = tmp_path / 'out'
    image_demo.main(
        [str(inputs), CONFIG, '--weights', checkpoint, '--out-dir', str(out)]
        + ['--pred-score-thr', '0.6', '--batch-size', '2']
    )
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*.*')) == [
        'preds/a.png.json',
        'preds/sub/b.png.json',
        'vis/a.png.png',
        'vis/sub/b.png.png',
    ]
    model = init_detector(CONFIG, checkpoint)
    for name, img in images.items():
        record = json.loads((out / 'preds' / f'{name}.png.json').read_text())
        expected = inference_detector(model, str(inputs / f'{name}.png')).select(0.6)
        assert 0 < len(record['scores']) == len(expected)
        assert min(record['scores']) >= 0.6 and record['score_thr'] == 0.6
        assert (record['height'], record['width']) == img.shape[:2]
        assert set(record['class_names']) <= set(SHAPES_CLASSES)
        np.testing.assert_allclose(record['polygons'], expected.polygons, rtol=1e-6)
        np.testing.assert_allclose(record['bboxes'], expected.bboxes, rtol=1e-6)
        assert record['masks'] == expected.masks
        drawn = cv2.imread(str(out / 'vis' / f'{name}.png.png'))
        assert drawn.shape == img.shape
        covered = mask_utils.decode(expected.masks).any(axis=2)
        assert covered.any()
        assert (drawn != img).any(axis=2)[covered].mean() > 0.95  # masks drawn over the image


def test_image_demo_without_detections_copies_the_image(tmp_path, checkpoint):
    img = random_image(40, 60, 2)
    cv2.imwrite(str(tmp_path / 'c.png'), img)
    out = tmp_path / 'out'
    image_demo.main(
        [str(tmp_path / 'c.png'), CONFIG, '--weights', checkpoint, '--out-dir', str(out)]
        + ['--pred-score-thr', '2']
    )
    np.testing.assert_array_equal(cv2.imread(str(out / 'vis' / 'c.png.png')), img)
    record = json.loads((out / 'preds' / 'c.png.json').read_text())
    assert record['scores'] == record['polygons'] == record['masks'] == []


def test_image_demo_keeps_images_of_the_same_stem_apart(tmp_path, checkpoint):
    inputs, out = tmp_path / 'inputs', tmp_path / 'out'
    inputs.mkdir()
    cv2.imwrite(str(inputs / 'a.png'), random_image(40, 60, 3))
    cv2.imwrite(str(inputs / 'a.bmp'), random_image(50, 30, 4))
    image_demo.main([str(inputs), CONFIG, '--weights', checkpoint, '--out-dir', str(out)])
    for name, shape in (('a.png', (40, 60, 3)), ('a.bmp', (50, 30, 3))):
        assert cv2.imread(str(out / 'vis' / f'{name}.png')).shape == shape
        record = json.loads((out / 'preds' / f'{name}.json').read_text())
        assert record['img_path'] == str(inputs / name)


def test_image_demo_reports_a_missing_input(tmp_path, checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        image_demo.main([str(tmp_path / 'nope'), CONFIG, '--weights', checkpoint])
    assert exit_info.value.code == 1
    assert f"input '{tmp_path / 'nope'}' does not exist" in capsys.readouterr().err


def write_video(path: Path, num_frames: int, size: tuple[int, int], fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    assert writer.isOpened()
    for index in range(num_frames):
        writer.write(random_image(size[1], size[0], index))
    writer.release()


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


def test_video_demo_writes_every_frame(tmp_path, checkpoint):
    video, out = tmp_path / 'in.mp4', tmp_path / 'drawn' / 'out.mp4'
    write_video(video, num_frames=7, size=(96, 64), fps=5)
    video_demo.main(
        [str(video), CONFIG, '--weights', checkpoint, '--out', str(out), '--batch-size', '3']
    )
    frames, fps = read_video(out)
    inputs, _ = read_video(video)
    assert len(frames) == 7 and fps == pytest.approx(5)
    assert all(frame.shape == (64, 96, 3) for frame in frames)
    differences = [
        np.abs(f.astype(int) - i.astype(int)).mean() for f, i in zip(frames, inputs, strict=True)
    ]
    assert min(differences) > 10  # detections drawn on every frame


def test_video_demo_reports_an_unreadable_video(tmp_path, checkpoint, capsys):
    (tmp_path / 'notes.mp4').write_text('not a video')
    out = tmp_path / 'out.mp4'
    with pytest.raises(SystemExit):
        video_demo.main(
            [str(tmp_path / 'notes.mp4'), CONFIG, '--weights', checkpoint, '--out', str(out)]
        )
    assert f"OpenCV cannot open video '{tmp_path / 'notes.mp4'}'" in capsys.readouterr().err
    assert not out.exists()


def test_image_demo_takes_the_checkpoint_after_the_config(tmp_path, checkpoint, capsys):
    cv2.imwrite(str(tmp_path / 'c.png'), random_image(40, 60, 2))
    out = tmp_path / 'out'
    image_demo.main([str(tmp_path / 'c.png'), CONFIG, checkpoint, '--out-dir', str(out)])
    assert (out / 'preds' / 'c.png.json').is_file()
    assert 'random weights' not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        image_demo.main([str(tmp_path / 'c.png'), CONFIG, checkpoint, '--weights', 'other.pth'])
    assert 'two checkpoints' in capsys.readouterr().err


def test_video_demo_mmdetection_form_with_show(tmp_path, checkpoint, monkeypatch):
    video, out = tmp_path / 'in.mp4', tmp_path / 'out.mp4'
    write_video(video, num_frames=5, size=(96, 64), fps=5)
    shown = []
    monkeypatch.setenv('DISPLAY', ':0')
    monkeypatch.setattr(display, '_opencv_gui', lambda: 'QT5')
    monkeypatch.setattr(video_demo.cv2, 'imshow', lambda name, frame: shown.append(frame))
    monkeypatch.setattr(video_demo.cv2, 'waitKey', lambda ms: ord('q') if len(shown) == 3 else -1)
    monkeypatch.setattr(video_demo.cv2, 'destroyAllWindows', lambda: None)
    video_demo.main(
        [str(video), CONFIG, checkpoint, '--score-thr', '0.5', '--out', str(out), '--show']
    )
    frames, _ = read_video(out)
    assert len(shown) == len(frames) == 3  # q stopped the demo; what was shown is written
    np.testing.assert_array_equal(frames[0].shape, shown[0].shape)


class FakeCamera:
    """cv2.VideoCapture of a camera that gives ``num_frames`` frames (three by default)."""

    opened: list = []
    num_frames = 3

    def __init__(self, source) -> None:
        FakeCamera.opened.append(source)
        self.frames = [random_image(48, 64, seed) for seed in range(self.num_frames)]
        self.properties: dict[int, float] = {}

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return True

    def get(self, prop: int) -> float:
        return 0.0  # cameras often report no frame rate

    def set(self, prop: int, value: float) -> bool:
        self.properties[prop] = value
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self) -> None:
        pass


def test_video_demo_reads_a_camera_index(tmp_path, checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(video_demo.cv2, 'VideoCapture', FakeCamera)
    monkeypatch.chdir(tmp_path)  # no file named 0
    out = tmp_path / 'camera.avi'
    video_demo.main(['0', str(REPO / CONFIG), checkpoint, '--out', str(out)])
    assert FakeCamera.opened == [0]
    monkeypatch.undo()
    frames, fps = read_video(out)
    assert len(frames) == 3 and fps == pytest.approx(video_demo.DEFAULT_FPS)
    assert '3 frames in' in capsys.readouterr().out


def test_webcam_demo_shows_the_newest_frames_until_max_frames(checkpoint, monkeypatch, capsys):
    cameras, shown, waits = [], [], []

    class Webcam(FakeCamera):
        num_frames = 10

        def __init__(self, source) -> None:
            super().__init__(source)
            cameras.append(self)

    monkeypatch.setattr(video_demo.cv2, 'VideoCapture', Webcam)
    monkeypatch.setenv('DISPLAY', ':0')
    monkeypatch.setattr(display, '_opencv_gui', lambda: 'QT5')
    monkeypatch.setattr(video_demo.cv2, 'imshow', lambda name, frame: shown.append(frame))
    monkeypatch.setattr(video_demo.cv2, 'waitKey', lambda ms: waits.append(ms) or -1)
    monkeypatch.setattr(video_demo.cv2, 'destroyAllWindows', lambda: None)
    video_demo.main(['0', str(REPO / CONFIG), checkpoint, '--show', '--max-frames', '4'])
    assert len(shown) == 4 and len(cameras[0].frames) == 6  # stopped reading after 4 frames
    assert waits == [1] * 4  # a camera paces the loop: 1 ms for a key, not a frame interval
    assert cameras[0].properties == {cv2.CAP_PROP_BUFFERSIZE: 1}  # the newest frame each time
    assert '4 frames in' in capsys.readouterr().out
    # A checkpoint that carries its config stands in place of CONFIG.
    published = Path(checkpoint).with_name('with_config.pth')
    saved = torch.load(checkpoint, weights_only=True)
    torch.save(
        dict(saved, meta=dict(saved['meta'], cfg=Config.fromfile(CONFIG).pretty_text)), published
    )
    video_demo.main(['0', str(published), '--show', '--max-frames', '1'])
    assert '1 frames in' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        video_demo.main(['0', str(REPO / CONFIG), checkpoint, '--show', '--max-frames', '0'])
    assert '--max-frames must be >= 1' in capsys.readouterr().err

"""Run a PolarMask model on every frame of a video or a camera; write and/or show the drawings.

``python demo/video_demo.py VIDEO CONFIG [CKPT | --weights CKPT] [--out out.mp4] [--show]
[--wait-time S] [--max-frames N] [--device cpu] [--pred-score-thr 0.3] [--batch-size 4]
[--cfg-options k=v ...]``

mmdetection's form ``video_demo.py VIDEO CONFIG CHECKPOINT --score-thr 0.5 --out o.mp4 --show``
works as well. ``VIDEO`` is a file, or a camera index such as ``0`` (then one frame per forward
pass unless ``--batch-size`` says otherwise). Frames are read and written with OpenCV at the
input's frame rate and size; ``.avi`` outputs are MJPG, anything else MPEG-4 (``mp4v``).
``--show`` shows each drawn frame for ``--wait-time`` seconds (default: one frame interval;
0 waits for a key); q or Esc stops, as does Ctrl-C, and what was read so far is written.
``--max-frames N`` stops after N frames.

As a webcam demo (``video_demo.py 0 CONFIG CKPT --show``), the camera paces the loop: a shown
frame waits 1 ms for a key by default, and OpenCV keeps one frame in its buffer, so each
forward pass gets the newest frame rather than one queued while the previous pass ran.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time

import cv2
import numpy as np

from polarmask.apis import draw_result, inference_detector, init_detector
from polarmask.engine.cli import add_demo_arguments, parse_demo_args, report_errors
from polarmask.utils.config import is_config_file
from polarmask.visualization import show_or_write

DEFAULT_FPS = 25.0
WINDOW_NAME = 'PolarMask'
QUIT_KEYS = (ord('q'), 27)  # q, Esc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='PolarMask on a video or a camera')
    parser.add_argument('video', help='input video file, or a camera index such as 0')
    parser.add_argument('config', help='config file, or a checkpoint that carries its config')
    add_demo_arguments(parser, batch_size=None)
    parser.add_argument('--out', help='output video (.mp4, or .avi for MJPG)')
    parser.add_argument(
        '--show', action='store_true', help='show the drawn frames (q or Esc stops)'
    )
    parser.add_argument(
        '--wait-time',
        type=float,
        default=None,
        help='seconds each shown frame stays (default: one frame interval, 1 ms for a camera; '
        '0: until a key)',
    )
    parser.add_argument('--max-frames', type=int, help='stop after this many frames')
    args = parse_demo_args(parser, argv)
    if args.weights is None and is_config_file(args.config):
        parser.error('no checkpoint: video_demo.py VIDEO CONFIG CHECKPOINT (or --weights CKPT)')
    if args.out is None and not args.show:
        parser.error('nothing to do: give --out FILE, --show, or both')
    if args.max_frames is not None and args.max_frames < 1:
        parser.error(f'--max-frames must be >= 1 (got {args.max_frames})')
    return args


def is_camera(source: str) -> bool:
    """Whether ``source`` is a camera index such as ``'0'`` rather than a video file."""
    return source.isdigit() and not osp.isfile(source)


def open_video(source: str) -> tuple[cv2.VideoCapture, float]:
    """The capture of a video file or a camera index, and its frame rate (or ``DEFAULT_FPS``)."""
    if is_camera(source):
        capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            raise ValueError(
                f'OpenCV cannot open camera {source}: check that it is connected and not in use '
                'by another program, or pass a video file'
            )
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not one queued meanwhile
    else:
        if not osp.isfile(source):
            raise FileNotFoundError(
                f"video '{source}' does not exist: check the path, or pass a camera index such as 0"
            )
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise ValueError(
                f"OpenCV cannot open video '{source}': pass a video file it can decode (e.g. .mp4, "
                '.avi), or convert it with ffmpeg -i IN -c:v libx264 OUT.mp4'
            )
    fps = capture.get(cv2.CAP_PROP_FPS)
    return capture, fps if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS


def read_frames(capture: cv2.VideoCapture, count: int) -> list[np.ndarray]:
    """Up to ``count`` next (H, W, 3) BGR frames; fewer at the end of the video."""
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return frames


def open_writer(path: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """A writer of (W, H) ``size`` frames, MJPG for ``.avi``, mp4v otherwise."""
    if osp.dirname(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
    codec = 'MJPG' if path.lower().endswith('.avi') else 'mp4v'
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec), fps, size)
    if not writer.isOpened():
        raise ValueError(f"OpenCV cannot write video '{path}' with {codec}: use a .mp4 or .avi")
    return writer


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with report_errors(args.video):
        show = show_or_write(args.show, args.out, '--out FILE')
        capture, fps = open_video(args.video)
        camera = is_camera(args.video)
        batch_size = args.batch_size or (1 if camera else 4)
        wait_time = args.wait_time
        if wait_time is None:
            wait_time = 0.001 if camera else 1 / fps
        wait_ms = 0 if wait_time == 0 else max(1, round(1000 * wait_time))  # 0: until a key
        model = init_detector(args.config, args.weights, args.device, args.cfg_options)
        palette = model.dataset_meta.get('palette')
        writer = None
        num_frames, start, stop = 0, time.perf_counter(), False
        try:
            while not stop:
                count = batch_size
                if args.max_frames is not None:
                    count = min(count, args.max_frames - num_frames)
                frames = read_frames(capture, count)
                if not frames:
                    break
                if writer is None and args.out is not None:
                    height, width = frames[0].shape[:2]
                    writer = open_writer(args.out, fps, (width, height))
                for frame, result in zip(frames, inference_detector(model, frames), strict=True):
                    drawn = draw_result(frame, result, args.pred_score_thr, palette)
                    if writer is not None:
                        writer.write(drawn)
                    num_frames += 1
                    if show:
                        cv2.imshow(WINDOW_NAME, drawn)
                        stop = cv2.waitKey(wait_ms) & 0xFF in QUIT_KEYS
                        if stop:
                            break
        except KeyboardInterrupt:
            print('stopped (Ctrl-C)', file=sys.stderr)
        finally:
            capture.release()
            if writer is not None:
                writer.release()
            if show:
                cv2.destroyAllWindows()
        if num_frames == 0:
            raise ValueError(f"video '{args.video}' has no frames OpenCV can read")
        seconds = time.perf_counter() - start
        written = f' -> {args.out}' if args.out is not None else ''
        print(f'{num_frames} frames in {seconds:.1f} s ({num_frames / seconds:.1f} fps){written}')


if __name__ == '__main__':
    main()

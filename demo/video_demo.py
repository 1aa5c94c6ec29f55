"""Run a PolarMask model on every frame of a video and write the drawn video.

``python demo/video_demo.py VIDEO CONFIG --weights CKPT --out out.mp4 [--device cpu]
[--pred-score-thr 0.3] [--batch-size 4] [--cfg-options k=v ...]``

Frames are read and written with OpenCV at the input's frame rate and size; ``.avi`` outputs
are MJPG, anything else MPEG-4 (``mp4v``).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import time

import cv2
import numpy as np
from mmengine.config import DictAction

from polarmask.apis import draw_result, inference_detector, init_detector
from polarmask.engine.cli import report_errors

DEFAULT_FPS = 25.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='PolarMask on a video: a drawn video')
    parser.add_argument('video', help='input video file')
    parser.add_argument('config', help='config file')
    parser.add_argument('--weights', required=True, help='checkpoint file')
    parser.add_argument('--out', required=True, help='output video (.mp4, or .avi for MJPG)')
    parser.add_argument('--device', default='cpu', help="device, e.g. 'cpu' or 'cuda:0'")
    parser.add_argument('--pred-score-thr', type=float, default=0.3, help='minimum score drawn')
    parser.add_argument('--batch-size', type=int, default=4, help='frames per forward pass')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config values, k=v'
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1 (got {args.batch_size})')
    return args


def open_video(path: str) -> tuple[cv2.VideoCapture, float]:
    """The capture of ``path`` and its frame rate (``DEFAULT_FPS`` when unknown)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"video '{path}' does not exist: check the path")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(
            f"OpenCV cannot open video '{path}': pass a video file it can decode (e.g. .mp4, "
            '.avi), or convert it with ffmpeg -i IN -c:v libx264 OUT.mp4'
        )
    fps = capture.get(cv2.CAP_PROP_FPS)
    return capture, fps if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS


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
        capture, fps = open_video(args.video)
        model = init_detector(args.config, args.weights, args.device, args.cfg_options)
        palette = model.dataset_meta.get('palette')
        writer = None
        num_frames, start = 0, time.perf_counter()
        try:
            while True:
                frames = []
                while len(frames) < args.batch_size:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    frames.append(frame)
                if not frames:
                    break
                if writer is None:
                    height, width = frames[0].shape[:2]
                    writer = open_writer(args.out, fps, (width, height))
                for frame, result in zip(frames, inference_detector(model, frames), strict=True):
                    writer.write(draw_result(frame, result, args.pred_score_thr, palette))
                num_frames += len(frames)
        finally:
            capture.release()
            if writer is not None:
                writer.release()
        if writer is None:
            raise ValueError(f"video '{args.video}' has no frames OpenCV can read")
        seconds = time.perf_counter() - start
        print(
            f'{num_frames} frames in {seconds:.1f} s ({num_frames / seconds:.1f} fps) -> {args.out}'
        )


if __name__ == '__main__':
    main()

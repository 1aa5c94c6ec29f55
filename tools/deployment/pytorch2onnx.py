"""Export a PolarMask checkpoint to ONNX, with the ray decoding in the graph.

Usage:
    python tools/deployment/pytorch2onnx.py CONFIG CKPT --out model.onnx [--shape H W]
        [--opset 17] [--dynamic-export] [--verify] [--input-img IMG] [--cfg-options ...]

Input ``inputs`` (N, 3, H, W) float32: the image resized as the config's test pipeline does,
pixel values 0-255 in BGR order (as OpenCV loads it); normalisation and padding happen in the
graph. Outputs, over all FPN levels and in input pixels: ``scores`` (N, P, C) class
probabilities, ``centerness`` (N, P), ``bboxes`` (N, P, 4) x1y1x2y2 and ``polygons``
(N, P, R, 2). With ``--dynamic-export`` batch size and image size are free; otherwise fixed to
1 x ``--shape``.

NMS is NOT in the graph. To get detections, keep per level the ``nms_pre`` best points by
score x centerness, drop class probabilities below ``score_thr``, score = probability x
(centerness + 0.5) and run class-wise NMS on the boxes (``polarmask.ops.batched_nms``, IoU 0.5,
``offset=1``); ``polarmask.deployment.postprocess_outputs`` does exactly what
``PolarMask.predict`` does. ``--verify`` runs the file with onnxruntime and compares each output
with PyTorch (at ``--shape``, and with ``--dynamic-export`` also at a second size with a batch
of 2), printing the largest absolute difference; the exit status is 1 when one exceeds 1e-4 x
the output's magnitude.
"""

from __future__ import annotations

import argparse
import os
import sys

import cv2
import torch

from polarmask.apis import init_detector
from polarmask.deployment import compare_outputs, export_onnx, run_onnxruntime
from polarmask.engine.cli import ConfigOptions, report_errors
from polarmask.utils.config import config_input_shape, load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export PolarMask (network + decoding) to ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', '--output-file', dest='out', default='tmp.onnx', help='output .onnx file'
    )
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        help="input height and width (one number: square); default: the test pipeline's Resize",
    )
    parser.add_argument(
        '--opset', '--opset-version', dest='opset', type=int, default=17, help='ONNX opset'
    )
    parser.add_argument(
        '--dynamic-export', action='store_true', help='free batch size, height and width'
    )
    parser.add_argument(
        '--verify', action='store_true', help='compare onnxruntime with PyTorch outputs'
    )
    parser.add_argument(
        '--input-img', help='image for --verify, resized to --shape (default: random pixels)'
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptions, help='override config values'
    )
    return parser.parse_args(argv)


def input_shape(args: argparse.Namespace, cfg) -> tuple[int, int]:
    """(H, W) from ``--shape`` or the config's test pipeline."""
    if args.shape is None:
        shape = config_input_shape(cfg)
        if shape is None:
            raise ValueError(
                f'{args.config}: no fixed Resize scale in the test pipeline; pass --shape'
            )
        return shape
    if len(args.shape) == 1:
        return args.shape[0], args.shape[0]
    if len(args.shape) == 2:
        return args.shape[0], args.shape[1]
    raise ValueError(f'--shape takes H W or one size, got {args.shape}')


def verification_inputs(args: argparse.Namespace, shape: tuple[int, int]) -> list[torch.Tensor]:
    """Batches to compare on: (1, 3, H, W), plus a batch of 2 of another size if dynamic."""
    generator = torch.Generator().manual_seed(0)
    if args.input_img:
        image = cv2.imread(args.input_img)
        if image is None:
            raise FileNotFoundError(f'--input-img {args.input_img!r} is missing or not an image')
        resized = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        first = torch.from_numpy(resized).permute(2, 0, 1)[None].float()
    else:
        first = torch.rand(1, 3, *shape, generator=generator) * 255
    batches = [first]
    if args.dynamic_export:
        other = (max(32, shape[0] - 56), shape[1] + 40)
        batches.append(torch.rand(2, 3, *other, generator=generator) * 255)
    return batches


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with report_errors(args.config):
        return export_and_verify(args)


def export_and_verify(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.cfg_options)
    shape = input_shape(args, cfg)
    batches = verification_inputs(args, shape) if args.verify else []
    model = init_detector(cfg, args.checkpoint, device='cpu')
    folder = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(folder, exist_ok=True)
    wrapper = export_onnx(
        model, args.out, shape, opset_version=args.opset, dynamic_export=args.dynamic_export
    )
    kind = (
        'dynamic batch and image size'
        if args.dynamic_export
        else f'fixed input 1x3x{shape[0]}x{shape[1]}'
    )
    print(f'wrote {args.out} (opset {args.opset}, {kind}); NMS is not in the graph')
    if not args.verify:
        return 0
    ok = True
    for inputs in batches:
        with torch.no_grad():
            reference = wrapper(inputs)
        report = compare_outputs(run_onnxruntime(args.out, inputs), reference)
        print(f'verify input {tuple(inputs.shape)}:')
        for name, (diff, tolerance) in report.items():
            status = 'ok' if diff <= tolerance else 'MISMATCH'
            print(f'  {name:<10} max abs diff {diff:.3g} (tolerance {tolerance:.3g}) {status}')
            ok = ok and diff <= tolerance
    print('onnxruntime matches PyTorch' if ok else 'onnxruntime does NOT match PyTorch')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())

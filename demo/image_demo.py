"""Run a PolarMask model on an image or a folder of images.

``python demo/image_demo.py INPUTS CONFIG [CKPT | --weights CKPT] [--out-dir outputs]
[--device cpu] [--pred-score-thr 0.3] [--batch-size 1] [--patch-size N]
[--patch-overlap-ratio 0.25] [--cfg-options k=v ...]``

The checkpoint may follow the config, as in mmdetection's demos (``--score-thr`` is accepted for
``--pred-score-thr`` too); without one the model keeps its random weights. A checkpoint that
carries its config (``tools/train.py``'s, ``publish_model.py``'s) may stand in place of CONFIG.
A thin command line of :class:`polarmask.apis.PolarMaskInferencer`.

For each image, writes ``OUT_DIR/vis/<file name>.png`` (filled translucent masks, polygon
outlines, class names and scores) and ``OUT_DIR/preds/<file name>.json`` (``img_path``,
``height``, ``width``, ``classes``, and per detection ``labels``, ``class_names``, ``scores``,
``bboxes`` x1y1x2y2, ``polygons`` [[x, y] x R] and ``masks`` COCO RLE), for the detections with a
score of at least ``--pred-score-thr``, all in pixels of the original image. The file name keeps
its extension (``a.jpg`` -> ``vis/a.jpg.png``), so ``a.jpg`` and ``a.png`` do not overwrite each
other. A folder is searched recursively; its sub-folders are kept in the output names, and a
file in it that cannot be read is reported and skipped. ``--patch-size N`` runs each image as
N x N tiles overlapping by ``--patch-overlap-ratio`` (large images; the rule for tiles and cut
instances is in :mod:`polarmask.apis.sliced`).
"""

from __future__ import annotations

import argparse
import time

from polarmask.apis import PolarMaskInferencer
from polarmask.engine.cli import add_demo_arguments, parse_demo_args, report_errors
from polarmask.utils.config import is_config_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='PolarMask on images: drawings + JSON')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config', help='config file, or a checkpoint that carries its config')
    add_demo_arguments(parser, batch_size=1)
    parser.add_argument('--out-dir', default='outputs', help='output folder (vis/, preds/)')
    parser.add_argument(
        '--patch-size',
        type=int,
        help='run each image as overlapping tiles of this many pixels a side (large images)',
    )
    parser.add_argument(
        '--patch-overlap-ratio',
        type=float,
        default=0.25,
        help='overlap of neighbouring tiles as a fraction of --patch-size; make it larger than '
        'the largest object',
    )
    return parse_demo_args(parser, argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with report_errors(args.config):
        inferencer = PolarMaskInferencer(args.config, args.weights, args.device, args.cfg_options)
        if args.weights is None and is_config_file(args.config):
            print('warning: no checkpoint given, the model has random weights')
        start = time.perf_counter()
        results = inferencer(
            args.inputs,
            batch_size=args.batch_size,
            out_dir=args.out_dir,
            no_save_pred=False,
            pred_score_thr=args.pred_score_thr,
            patch_size=args.patch_size,
            patch_overlap_ratio=args.patch_overlap_ratio,
        )
        seconds = time.perf_counter() - start
        print(f'{len(results["predictions"])} images in {seconds:.1f} s; results in {args.out_dir}')


if __name__ == '__main__':
    main()

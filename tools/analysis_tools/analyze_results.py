"""Rank the images of a test run by their mask AP and draw the best and the worst.

``python tools/analysis_tools/analyze_results.py CONFIG PKL SHOW_DIR [--topk 20]
[--show-score-thr 0] [--cfg-options k=v ...]``

``PKL`` is the output of ``tools/test.py --out``; no model runs. Each image's mask AP is COCO's
AP of that image alone (``polarmask.analysis.image_ap``: IoU 0.50:0.95, over the classes of its
ground truth; images without ground truth are not ranked), against the json the config evaluates
with. The ``--topk`` best images are drawn into ``SHOW_DIR/good`` and the worst into
``SHOW_DIR/bad``, as mmdetection's tool does: the ground truth (largest contour of each instance,
as PolarMask learns it) on the left, the predictions scoring at least ``--show-score-thr`` on the
right, in ``<image file name>_<AP>.png`` (``000001.jpg_0.523.png``). Images are read from the
paths the results file keeps, as the test run's dataset gave them.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from polarmask.analysis.cli import load_run, results_parser
from polarmask.analysis.ground_truth import ImageGroundTruth, config_ground_truth
from polarmask.analysis.image_ap import images_ap, top_k
from polarmask.analysis.results import DRAWING_FIELDS, MATCHING_FIELDS
from polarmask.engine.cli import report_errors
from polarmask.structures.polar import mask_contour
from polarmask.visualization import draw_det_instances, draw_gt_instances


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = results_parser('Draw the images of best and worst mask AP of a test run')
    parser.add_argument(
        'show_dir', metavar='SHOW_DIR', help='the drawings go to SHOW_DIR/good and SHOW_DIR/bad'
    )
    parser.add_argument('--topk', type=int, default=20, help='images drawn in each folder')
    parser.add_argument(
        '--show-score-thr', type=float, default=0.0, help='minimum score of the drawn predictions'
    )
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1 (got {args.topk})')
    return args


def draw_image(
    record: dict[str, Any],
    gt: ImageGroundTruth,
    class_names: Sequence[str],
    score_thr: float,
    source: str,
) -> np.ndarray:
    """The image of a result record with its ground truth (left) and predictions (right).

    Returns:
        np.ndarray: (H, 2W, 3) uint8 BGR.

    Raises:
        FileNotFoundError: the image file cannot be read.
        ValueError: the image is not the size the results were computed at.
    """
    path = record['img_path']
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(
            f"'{source}': image '{path}' of image id {record['img_id']} cannot be read; run "
            "from the folder tools/test.py ran in (the results keep the dataset's paths)"
        )
    if img.shape[:2] != gt.shape:
        raise ValueError(
            f"'{source}': image '{path}' is {img.shape[:2]} (H, W) but the annotations of image "
            f'id {record["img_id"]} say {gt.shape}: analyse with the dataset of the test run'
        )
    contours, labels = [], []
    for rle, label, crowd in zip(gt.rles, gt.labels.tolist(), gt.crowd.tolist(), strict=True):
        found = None if crowd else mask_contour(mask_utils.decode(rle))
        if found is not None:
            contours.append(found[0])
            labels.append(label)
    gt_drawn = draw_gt_instances(img, contours, np.array(labels), class_names=class_names)
    pred_drawn = draw_det_instances(
        img,
        record['polygons'],
        record['labels'],
        scores=record['scores'],
        class_names=class_names,
        score_thr=score_thr,
    )
    return np.concatenate((gt_drawn, pred_drawn), axis=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with report_errors(args.config):
        cfg, results = load_run(args, MATCHING_FIELDS + DRAWING_FIELDS)
        source = args.prediction_path
        ground_truth = config_ground_truth(cfg)
        aps = images_ap(results, ground_truth, source)
        good, bad = top_k(aps, args.topk)
        for folder, ranked in (('good', good), ('bad', bad)):
            out_dir = osp.join(args.show_dir, folder)
            os.makedirs(out_dir, exist_ok=True)
            for index in ranked.tolist():
                record = results[index]
                gt = ground_truth.image(int(record['img_id']))
                drawn = draw_image(record, gt, ground_truth.classes, args.show_score_thr, source)
                name = f'{osp.basename(record["img_path"])}_{aps[index]:.3f}.png'
                cv2.imwrite(osp.join(out_dir, name), drawn)
    num_ranked = len(np.flatnonzero(~np.isnan(aps)))
    unranked = len(aps) - num_ranked
    print(
        f'mask AP of {num_ranked} images, mean {np.nanmean(aps) if num_ranked else 0:.3f}'
        + (f' ({unranked} without ground truth not ranked)' if unranked else '')
    )
    for folder, ranked in (('best', good), ('worst', bad)):
        listing = ', '.join(f'{results[i]["img_id"]}: {aps[i]:.3f}' for i in ranked.tolist())
        print(f'{len(ranked)} {folder} (image id: AP): {listing}')
    print(f'drawn to {osp.join(args.show_dir, "good")} and {osp.join(args.show_dir, "bad")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

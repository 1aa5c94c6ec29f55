"""Confusion matrix of the results of a test run, with a background row and column.

``python tools/analysis_tools/confusion_matrix.py CONFIG PKL SAVE_DIR [--score-thr 0.3]
[--tp-iou-thr 0.5] [--show] [--color-theme plasma] [--cfg-options k=v ...]``

``PKL`` is the output of ``tools/test.py --out``; no model runs. Detections scoring at least
``--score-thr`` are matched one-to-one to the ground truth by mask IoU >= ``--tp-iou-thr``
(``polarmask.analysis.confusion_matrix``: ground truth by row, prediction by column, unmatched
detections in the background row, missed instances in the background column). Writes the counts
to ``SAVE_DIR/confusion_matrix.csv`` and ``.json`` and prints them; with matplotlib installed
(optional) also ``SAVE_DIR/confusion_matrix.png``, each row in percent as mmdetection draws it,
shown in a window with ``--show`` where there is a display.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

from terminaltables import AsciiTable

from polarmask.analysis.cli import load_run, results_parser
from polarmask.analysis.confusion_matrix import (
    confusion_matrix,
    plot_confusion_matrix,
    save_confusion_matrix,
)
from polarmask.analysis.ground_truth import config_ground_truth
from polarmask.analysis.plotting import NO_MATPLOTLIB, can_show, optional_pyplot
from polarmask.analysis.results import MATCHING_FIELDS
from polarmask.engine.cli import report_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = results_parser('Confusion matrix of the results of tools/test.py --out')
    parser.add_argument(
        'save_dir', metavar='SAVE_DIR', help='folder for the matrix (csv, json and png)'
    )
    parser.add_argument('--show', action='store_true', help='also show the plot in a window')
    parser.add_argument('--color-theme', default='plasma', help='matplotlib colour map')
    parser.add_argument(
        '--score-thr', type=float, default=0.3, help='detections scoring less are left out'
    )
    parser.add_argument('--tp-iou-thr', type=float, default=0.5, help='mask IoU that makes a match')
    args = parser.parse_args(argv)
    if not 0 < args.tp_iou_thr <= 1:
        parser.error(f'--tp-iou-thr must be in (0, 1] (got {args.tp_iou_thr})')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with report_errors(args.config):
        cfg, results = load_run(args, MATCHING_FIELDS)
        ground_truth = config_ground_truth(cfg)
        matrix = confusion_matrix(
            results, ground_truth, args.prediction_path, args.score_thr, args.tp_iou_thr
        )
        labels = [*ground_truth.classes, 'background']
        settings = dict(score_thr=args.score_thr, tp_iou_thr=args.tp_iou_thr)
        written = save_confusion_matrix(matrix, labels, args.save_dir, settings)
        plt = optional_pyplot(interactive=args.show)
        if plt is not None:
            figure = plot_confusion_matrix(plt, matrix, labels, color_theme=args.color_theme)
            written.append(osp.join(args.save_dir, 'confusion_matrix.png'))
            figure.savefig(written[-1], format='png')
            if args.show and can_show(plt):
                plt.show()
            elif args.show:
                print('no display: not showing the plot, only writing it', file=sys.stderr)
            plt.close(figure)
    rows = [['ground truth \\ prediction', *labels]]
    rows += [[label, *row] for label, row in zip(labels, matrix.tolist(), strict=True)]
    print(AsciiTable(rows).table)
    if plt is None:
        print(NO_MATPLOTLIB)
    print(f'saved: {", ".join(written)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

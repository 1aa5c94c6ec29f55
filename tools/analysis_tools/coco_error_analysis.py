"""COCO error analysis of a result json: mmdetection's precision/recall breakdown figures.

``python tools/analysis_tools/coco_error_analysis.py RESULT_JSON OUT_DIR --ann ANN
[--types segm bbox]``

``RESULT_JSON`` is ``PREFIX.segm.json`` of ``tools/test.py --json_out PREFIX`` (or of
``eval_metric.py`` with ``--cfg-options test_evaluator.outfile_prefix=PREFIX``). For each type,
class and area range (``allarea``, ``small``, ``medium``, ``large``) the seven curves C75, C50,
Loc, Sim, Oth, BG and FN (``polarmask.analysis.error_analysis``) and their APs go to
``OUT_DIR/<type>/error_analysis.json``; with matplotlib installed (optional) also the figures
``OUT_DIR/<type>/<type>-<class>-<area>.png`` (``allclass`` for the mean over classes).
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

from terminaltables import AsciiTable

from polarmask.analysis.error_analysis import (
    ALL_CLASSES,
    AREA_NAMES,
    ERROR_TYPES,
    error_breakdown,
    load_coco,
    save_error_breakdown,
)
from polarmask.analysis.plotting import NO_MATPLOTLIB, optional_pyplot
from polarmask.engine.cli import report_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='COCO error analysis of a result json')
    parser.add_argument('result', help='result json (PREFIX.segm.json of tools/test.py)')
    parser.add_argument('out_dir', help='folder for the figures and numbers')
    parser.add_argument(
        '--ann',
        default='data/coco/annotations/instances_val2017.json',
        help='the COCO json the results were computed on',
    )
    parser.add_argument(
        '--types', nargs='+', choices=('segm', 'bbox'), default=['segm'], help='result types'
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = [['type', *ERROR_TYPES]]
    with report_errors(args.result):
        coco_gt, coco_dt = load_coco(args.ann, args.result)
        plt = optional_pyplot()
        for iou_type in args.types:
            breakdown = error_breakdown(coco_gt, coco_dt, iou_type)
            out_dir = osp.join(args.out_dir, iou_type)
            written = save_error_breakdown(breakdown, out_dir, iou_type, plt)
            curves = breakdown.curves(None, AREA_NAMES.index('allarea'))
            aps = (
                [f'{c.mean():.3f}' for c in curves]
                if curves is not None
                else ['-'] * len(ERROR_TYPES)
            )
            rows.append([iou_type, *aps])
            print(f'{iou_type}: {len(written)} files written to {out_dir}')
    print(f'AP of each curve, {ALL_CLASSES}, allarea:')
    print(AsciiTable(rows).table)
    if plt is None:
        print(NO_MATPLOTLIB)
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Evaluate the results that ``tools/test.py --out`` saved, with the config's test evaluator.

``python tools/analysis_tools/eval_metric.py CONFIG PKL [--cfg-options k=v ...]``

No model runs: the saved predictions of every image go through the metrics of
``test_evaluator`` (``CocoMetric``) as in a test run, so the numbers are those of
``tools/test.py --eval``. The ground truth is the evaluator's ``ann_file``, else the test
dataset's. ``--cfg-options test_evaluator.metric=bbox`` changes the metric;
``test_evaluator.outfile_prefix=work_dirs/res`` also writes ``res.segm.json`` (the input of
``coco_error_analysis.py``).
"""

from __future__ import annotations

import sys

from polarmask.analysis.cli import load_run, results_parser
from polarmask.analysis.results import EVALUATION_FIELDS, offline_evaluate
from polarmask.engine.cli import report_errors


def main(argv: list[str] | None = None) -> int:
    parser = results_parser('Evaluate the results saved by tools/test.py --out (no model runs)')
    args = parser.parse_args(argv)
    with report_errors(args.config):
        cfg, results = load_run(args, EVALUATION_FIELDS)
        metrics = offline_evaluate(cfg, results)
    print(metrics)
    return 0


if __name__ == '__main__':
    sys.exit(main())

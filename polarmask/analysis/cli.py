"""What the command lines that analyse a test run's results share: ``CONFIG PKL`` and
``--cfg-options``, and reading both."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from mmengine.config import Config, DictAction

from polarmask.analysis.results import load_det_results
from polarmask.utils import register_all_modules
from polarmask.utils.config import load_config


def results_parser(description: str) -> argparse.ArgumentParser:
    """A parser with ``config`` (CONFIG), ``prediction_path`` (PKL) and ``--cfg-options``;
    tools add their own arguments after them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', metavar='CONFIG', help='config of the test run')
    parser.add_argument(
        'prediction_path', metavar='PKL', help='results of tools/test.py --out (.pkl)'
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config values, k=v'
    )
    return parser


def load_run(
    args: argparse.Namespace, fields: Sequence[str]
) -> tuple[Config, list[dict[str, Any]]]:
    """The config (with ``--cfg-options``) and the result records of a :func:`results_parser`
    command line, each record checked for ``fields``."""
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    return cfg, load_det_results(args.prediction_path, fields)

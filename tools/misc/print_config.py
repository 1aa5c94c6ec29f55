"""Print a config with its ``_base_`` files and ``--cfg-options`` merged in.

``python tools/misc/print_config.py CONFIG [--cfg-options k=v ...]``
"""

from __future__ import annotations

import argparse
import sys

from mmengine.config import DictAction

from polarmask.engine.cli import report_errors
from polarmask.utils.config import load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Print the whole config')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config values, k=v'
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with report_errors(args.config):
        cfg = load_config(args.config, args.cfg_options)
    print(f'Config:\n{cfg.pretty_text}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

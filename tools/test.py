"""Test a PolarMask checkpoint: ``python tools/test.py CONFIG CKPT [--out x.pkl] [--eval segm]``."""

from mmengine.registry import RUNNERS

from polarmask.engine.cli import build_test_parser, config_for_testing, report_errors
from polarmask.engine.runner import end_process_group
from polarmask.utils import register_all_modules


def main() -> None:
    args = build_test_parser().parse_args()
    with report_errors(args.config):
        register_all_modules()
        cfg = config_for_testing(args)
        runner = RUNNERS.build(cfg)
        runner.test()
    end_process_group()


if __name__ == '__main__':
    main()

"""Train a PolarMask model: ``python tools/train.py CONFIG [--work-dir DIR] [--resume] ...``."""

from mmengine.registry import RUNNERS

from polarmask.engine.cli import build_train_parser, config_for_training, report_errors
from polarmask.engine.runner import end_process_group
from polarmask.utils import register_all_modules


def main() -> None:
    args = build_train_parser().parse_args()
    with report_errors(args.config):
        register_all_modules()
        cfg = config_for_training(args)
        RUNNERS.build(cfg).train()
    end_process_group()


if __name__ == '__main__':
    main()

"""Command-line parsing and config assembly for ``tools/train.py`` and ``tools/test.py``, and
the arguments the demos share.

The parsers accept mmdetection 3.x's flags and the original PolarMask's spellings, so the seed's
commands run verbatim (``--work_dir``, ``--resume_from``, ``--validate``, ``--eval segm``,
``--launcher`` given twice by ``dist_train.sh``, ``--local_rank`` from torch.distributed.launch).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator

import torch
from mmengine.config import Config, DictAction

from polarmask.utils.config import load_config
from polarmask.visualization.display import show_or_write

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


class ConfigOptions(DictAction):
    """mmengine's ``DictAction`` for ``--cfg-options``; a KEY without ``=VALUE`` is a usage
    error naming it instead of a ValueError traceback."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        for item in values:
            if '=' not in item:
                parser.error(
                    f'{option_string} {item!r} has no value: write KEY=VALUE, e.g. '
                    f"{item}=... (several: KEY1=V1 KEY2=V2; lists: KEY='[1,2]')"
                )
        super().__call__(parser, namespace, values, option_string)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--work-dir',
        '--work_dir',
        dest='work_dir',
        help='folder for logs and checkpoints (default: ./work_dirs/<config>)',
    )
    parser.add_argument(
        '--cfg-options',
        '--options',
        nargs='+',
        action=ConfigOptions,
        help='override config values, e.g. train_dataloader.batch_size=2',
    )
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='job launcher; may be given more than once, the last one counts',
    )
    parser.add_argument(
        '--local_rank',
        '--local-rank',
        type=int,
        default=0,
        help='set by torch.distributed.launch; torchrun sets LOCAL_RANK instead',
    )


def build_train_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/train.py``."""
    parser = argparse.ArgumentParser(description='Train a PolarMask model')
    parser.add_argument('config', help='config file path')
    _add_common_arguments(parser)
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        metavar='CKPT',
        help='resume from CKPT, or from the latest checkpoint in the work dir',
    )
    parser.add_argument(
        '--resume_from',
        '--resume-from',
        dest='resume_from',
        metavar='CKPT',
        help="the original's spelling of --resume CKPT",
    )
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (needs CUDA)')
    parser.add_argument(
        '--auto-scale-lr',
        '--autoscale-lr',
        dest='auto_scale_lr',
        action='store_true',
        help='scale lr by (world size x images per GPU) / base_batch_size',
    )
    parser.add_argument(
        '--validate',
        action='store_true',
        help='evaluate on the val split during training (the default; kept for '
        "the original's commands)",
    )
    parser.add_argument(
        '--no-validate', action='store_true', help='do not evaluate during training'
    )
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument(
        '--deterministic', action='store_true', help='deterministic cuDNN / torch algorithms'
    )
    return parser


def build_test_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/test.py``."""
    parser = argparse.ArgumentParser(description='Test (and evaluate) a PolarMask model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    _add_common_arguments(parser)
    parser.add_argument('--out', help='save the raw results to this .pkl file')
    parser.add_argument(
        '--eval',
        nargs='+',
        choices=('segm', 'bbox'),
        help="COCO metrics to compute (default: the config's test_evaluator)",
    )
    parser.add_argument(
        '--json_out',
        '--json-out',
        dest='json_out',
        metavar='PREFIX',
        help='also write the results as PREFIX.segm.json / PREFIX.bbox.json',
    )
    parser.add_argument(
        '--format-only',
        action='store_true',
        help='only write the result jsons (e.g. for test-dev); needs --json_out',
    )
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation: the config's tta_pipeline views merged by its tta_model",
    )
    parser.add_argument('--show', action='store_true', help='show results in a window')
    parser.add_argument('--show-dir', help='write images with the predictions drawn here')
    parser.add_argument(
        '--score-thr', type=float, default=0.3, help='score threshold for --show/--show-dir'
    )
    parser.add_argument('--wait-time', type=float, default=2, help='seconds per image for --show')
    return parser


def add_demo_arguments(parser: argparse.ArgumentParser, batch_size: int | None) -> None:
    """Arguments the demos share, to follow their input and config arguments.

    mmdetection's forms (``CHECKPOINT`` after the config, ``--score-thr``) are accepted as well
    as ``--weights`` and ``--pred-score-thr``; :func:`parse_demo_args` reads them.

    Args:
        parser: the demo's parser.
        batch_size: default of ``--batch-size`` (None: the demo chooses).
    """
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (or --weights CKPT)')
    parser.add_argument('--weights', help='checkpoint file, the same as CHECKPOINT')
    parser.add_argument('--device', default='cpu', help="device, e.g. 'cpu' or 'cuda:0'")
    parser.add_argument(
        '--pred-score-thr',
        '--score-thr',
        dest='pred_score_thr',
        type=float,
        default=0.3,
        help='minimum score drawn and saved',
    )
    parser.add_argument(
        '--batch-size', type=int, default=batch_size, help='images per forward pass'
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptions, help='override config values, k=v'
    )


def parse_demo_args(
    parser: argparse.ArgumentParser, argv: list[str] | None = None
) -> argparse.Namespace:
    """Parse a demo command line of :func:`add_demo_arguments`.

    Returns:
        argparse.Namespace: with ``weights`` the checkpoint given as ``CHECKPOINT`` or
        ``--weights`` (None when neither).
    """
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1 (got {args.batch_size})')
    if args.checkpoint is not None and args.weights not in (None, args.checkpoint):
        parser.error(
            f'two checkpoints: CHECKPOINT {args.checkpoint} and --weights {args.weights}; '
            'give one of them'
        )
    args.weights = args.weights or args.checkpoint
    return args


def _set_work_dir(cfg: Config, args: argparse.Namespace) -> None:
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = os.path.join(
            './work_dirs', os.path.splitext(os.path.basename(args.config))[0]
        )


def config_for_training(args: argparse.Namespace) -> Config:
    """The runner config for a training command line."""
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    _set_work_dir(cfg, args)
    if args.amp:
        if not torch.cuda.is_available():
            # bfloat16 autocast is no way out: without AMX it is several times slower than
            # float32 (7-11x for the demo network's forward + backward on a 2-core AVX2 CPU).
            raise RuntimeError(
                '--amp needs CUDA and torch sees no GPU here: train without --amp (float32)'
            )
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError(
                f'{args.config}: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config'
            )
        cfg.auto_scale_lr.enable = True
    resume_from = args.resume_from or args.resume
    if resume_from == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume_from is not None:
        cfg.resume = True
        cfg.load_from = resume_from
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.seed is not None or args.deterministic:
        randomness = dict(cfg.get('randomness', {}))
        if args.seed is not None:
            randomness['seed'] = args.seed
        randomness['deterministic'] = args.deterministic
        cfg.randomness = randomness
    return cfg


def config_for_testing(args: argparse.Namespace) -> Config:
    """The runner config for a test command line."""
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    _set_work_dir(cfg, args)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    # Training-only parts are dropped so that testing needs neither train data nor an optimizer.
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler'):
        cfg.pop(key, None)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    if args.tta:
        _use_tta(cfg, args.config)

    evaluators = cfg.test_evaluator
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    evaluators = [dict(evaluator) for evaluator in evaluators]
    coco = [evaluator for evaluator in evaluators if evaluator.get('type') == 'CocoMetric']
    for evaluator in coco:
        if args.eval:
            evaluator['metric'] = list(args.eval)
        if args.json_out:
            evaluator['outfile_prefix'] = args.json_out
        if args.format_only:
            if not args.json_out:
                raise ValueError('--format-only needs --json_out PREFIX to know where to write')
            evaluator['format_only'] = True
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out!r}: the results file must end in .pkl or .pickle')
        evaluators.append(dict(type='DumpDetResults', out_file_path=args.out))
    cfg.test_evaluator = evaluators

    show = show_or_write(args.show, args.show_dir, '--show-dir DIR')
    if show or args.show_dir:
        visualization = cfg.default_hooks.get('visualization')
        if visualization is None:
            raise KeyError(
                f'{args.config}: --show/--show-dir need default_hooks.visualization in the config'
            )
        visualization.draw = True
        visualization.show = show
        visualization.wait_time = args.wait_time
        visualization.score_thr = args.score_thr
        if args.show_dir:
            visualization.test_out_dir = args.show_dir
    return cfg


def _use_tta(cfg: Config, config: str) -> None:
    """Wrap the model in ``tta_model`` and test on ``tta_pipeline`` (mmdetection's ``--tta``)."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if cfg.get(key) is None]
    if missing:
        raise KeyError(
            f'{config}: --tta needs {" and ".join(missing)} in the config, e.g. those of '
            'configs/_base_/models/polarmask_r50_fpn.py and '
            'configs/_base_/datasets/coco_instance_768.py'
        )
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def error_file() -> str:
    """Where :func:`report_errors` keeps the traceback of the latest failure (one per user)."""
    user = os.getuid() if hasattr(os, 'getuid') else getpass.getuser()
    return os.path.join(tempfile.gettempdir(), f'polarmask-last-error-{user}.txt')


@contextlib.contextmanager
def report_errors(what: str) -> Iterator[None]:
    """Turn an exception into one line on stderr; the full traceback goes to a file.

    The file (:func:`error_file`) is replaced by each failure, so failures do not pile up in
    the temporary folder; it is written to a temporary name first and renamed.

    Args:
        what: names the command line (e.g. the config path) in the message.
    """
    try:
        yield
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001  (every failure gets a readable line)
        target = error_file()
        with tempfile.NamedTemporaryFile(
            'w', dir=os.path.dirname(target), prefix='.polarmask-error-', delete=False
        ) as file:
            traceback.print_exc(file=file)
        os.replace(file.name, target)
        message = str(error).strip() or type(error).__name__
        print(f'error: {what}: {type(error).__name__}: {message}', file=sys.stderr)
        print(f'(full traceback: {target})', file=sys.stderr)
        sys.exit(1)

"""FLOPs and parameters of a PolarMask network, counted by ``mmengine.analysis``.

Usage:
    python tools/analysis_tools/get_flops.py CONFIG [--shape H W] [--cfg-options ...]

Counts the network (backbone, FPN, head: ``model(inputs, mode='tensor')``) on one random image
of ``--shape`` (default: the size the test pipeline's ``Resize`` gives), padded up to the data
preprocessor's ``pad_size_divisor`` as at test time. Decoding, NMS and data preprocessing are
not counted. mmengine (like fvcore) counts one fused multiply-add as one FLOP; operators it has
no counter for (element-wise ops, norms, pooling, upsampling) count zero and are listed in its
warnings.
"""

from __future__ import annotations

import argparse
import sys

import torch
from mmengine.analysis import get_model_complexity_info

from polarmask.apis import init_detector
from polarmask.engine.cli import ConfigOptions, report_errors
from polarmask.utils.config import config_input_shape, load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Count the FLOPs and parameters of a model')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        help="input height and width (one number: square); default: the test pipeline's Resize",
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptions, help='override config values'
    )
    return parser.parse_args(argv)


def padded_shape(args: argparse.Namespace, cfg) -> tuple[tuple[int, int], tuple[int, int]]:
    """((H, W) asked for, (H, W) after padding to the preprocessor's ``pad_size_divisor``)."""
    if args.shape is None:
        shape = config_input_shape(cfg)
        if shape is None:
            raise ValueError(
                f'{args.config}: no fixed Resize scale in the test pipeline; pass --shape'
            )
    elif len(args.shape) in (1, 2):
        shape = (args.shape[0], args.shape[-1])
    else:
        raise ValueError(f'--shape takes H W or one size, got {args.shape}')
    divisor = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1)
    return shape, tuple(-(-side // divisor) * divisor for side in shape)


def count(args: argparse.Namespace) -> dict:
    """Build the model and count; returns mmengine's complexity dict plus ``input_shape``."""
    cfg = load_config(args.config, args.cfg_options)
    shape, padded = padded_shape(args, cfg)
    model = init_detector(cfg, device='cpu')
    with torch.no_grad():
        info = get_model_complexity_info(model, input_shape=(3, *padded), show_arch=False)
    info['input_shape'] = shape
    info['padded_shape'] = padded
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with report_errors(args.config):
        info = count(args)
    print(info['out_table'])
    split = '=' * 30
    shape, padded = info['input_shape'], info['padded_shape']
    padding = '' if shape == padded else f' (padded to {padded})'
    print(f'{split}\nInput shape: {shape}{padding}\nFlops: {info["flops_str"]}')
    print(f'Params: {info["params_str"]}\n{split}')
    print(
        'A multiply-add counts as one FLOP; decoding, NMS and preprocessing are not counted, nor '
        'are the operators named in the "Unsupported operator" warnings above.'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Measure the speed of inference or of data loading, as mmdetection's benchmark.py does.

Usage:
    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT]
        --task {inference,dataloader} [--repeat-num 1] [--max-iter 2000] [--log-interval 50]
        [--num-warmup 5] [--fuse-conv-bn] [--dataset-type test] [--cfg-options ...]

``inference`` times ``model.test_step`` on one image at a time from the test dataloader (data
preprocessing, network, decoding, NMS; loading the image is not timed) on the GPU when one is
visible, else on the CPU. ``dataloader`` times how fast the configured dataloader (its
``batch_size`` and ``num_workers``) delivers images. The first ``--num-warmup`` iterations are
not counted; fps = counted images / their time. A dataset shorter than ``--max-iter`` is
iterated again. With ``--repeat-num`` > 1 the measurement is repeated and averaged.
"""

from __future__ import annotations

import argparse
import copy
import resource
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from mmengine.runner import Runner

from polarmask.apis import init_detector
from polarmask.engine.cli import ConfigOptions, report_errors
from polarmask.utils import register_all_modules
from polarmask.utils.config import load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Benchmark inference or data loading speed')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='checkpoint file (default: untrained weights)')
    parser.add_argument(
        '--task', choices=('inference', 'dataloader'), default='inference', help='what to time'
    )
    parser.add_argument('--repeat-num', type=int, default=1, help='number of measurements')
    parser.add_argument('--max-iter', type=int, default=2000, help='iterations per measurement')
    parser.add_argument('--log-interval', type=int, default=50, help='print every N iterations')
    parser.add_argument(
        '--num-warmup', type=int, default=5, help='first iterations that are not counted'
    )
    parser.add_argument(
        '--fuse-conv-bn',
        action='store_true',
        help='fold BatchNorm into the preceding convolutions (inference; slightly faster)',
    )
    parser.add_argument(
        '--dataset-type',
        choices=('train', 'val', 'test'),
        default='test',
        help='which dataloader of the config to use',
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptions, help='override config values'
    )
    args = parser.parse_args(argv)
    if args.max_iter <= args.num_warmup:
        parser.error(f'--max-iter ({args.max_iter}) must exceed --num-warmup ({args.num_warmup})')
    if args.log_interval < 1 or args.repeat_num < 1:
        parser.error('--log-interval and --repeat-num must be at least 1')
    return args


def _cycle(dataloader: Iterable) -> Iterator[Any]:
    """Batches of the dataloader, starting over at its end."""
    while True:
        empty = True
        for batch in dataloader:
            empty = False
            yield batch
        if empty:
            raise ValueError('the dataloader is empty: check the dataset path in the config')


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _report(done: int, max_iter: int, fps: float, unit: str) -> None:
    print(
        f'Done {unit} [{done:<3}/{max_iter}], fps: {fps:.1f} img / s, '
        f'times per image: {1000 / fps:.1f} ms / img',
        flush=True,
    )


def time_inference(model: torch.nn.Module, dataloader: Iterable, args: argparse.Namespace) -> float:
    """Images per second of ``model.test_step`` on single-image batches."""
    batches = _cycle(dataloader)
    pure_time, images = 0.0, 0
    for index in range(args.max_iter):
        data = next(batches)
        _synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            model.test_step(data)
        _synchronize()
        elapsed = time.perf_counter() - start
        if index >= args.num_warmup:
            pure_time += elapsed
            images += len(data['inputs'])
            if (index + 1) % args.log_interval == 0:
                _report(index + 1, args.max_iter, images / pure_time, 'image')
    return images / pure_time


def time_dataloader(dataloader: Iterable, args: argparse.Namespace) -> float:
    """Images per second that the dataloader delivers."""
    batches = _cycle(dataloader)
    total_time, images = 0.0, 0
    start = time.perf_counter()
    for index in range(args.max_iter):
        data = next(batches)
        elapsed = time.perf_counter() - start
        if index >= args.num_warmup:
            total_time += elapsed
            images += len(data['inputs'])
            if (index + 1) % args.log_interval == 0:
                _report(index + 1, args.max_iter, images / total_time, 'batch')
        start = time.perf_counter()
    return images / total_time


def build_dataloader(cfg, args: argparse.Namespace):
    """The config's dataloader of ``--dataset-type``; one image per batch for inference."""
    key = f'{args.dataset_type}_dataloader'
    if cfg.get(key) is None:
        raise KeyError(f'{args.config}: no {key} in the config')
    dataloader_cfg = copy.deepcopy(cfg.get(key))
    if args.task == 'inference':
        dataloader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
        dataloader_cfg.pop('batch_sampler', None)
    return Runner.build_dataloader(dataloader_cfg)


def run(args: argparse.Namespace) -> list[float]:
    """Run ``--repeat-num`` measurements and print the summary; returns the fps of each."""
    cfg = load_config(args.config, args.cfg_options)
    register_all_modules()
    dataloader = build_dataloader(cfg, args)
    model = None
    if args.task == 'inference':
        from mmcv.cnn import fuse_conv_bn
        from mmengine.model import revert_sync_batchnorm

        device = 'cuda' if torch.cuda.is_available() else 'cpu'
        model = revert_sync_batchnorm(init_detector(cfg, args.checkpoint, device=device))
        if args.fuse_conv_bn:
            model = fuse_conv_bn(model)
        print(f'inference on {device}, {torch.get_num_threads()} CPU threads', flush=True)
    fps_list = []
    for _ in range(args.repeat_num):
        if model is not None:
            fps_list.append(time_inference(model, dataloader, args))
        else:
            fps_list.append(time_dataloader(dataloader, args))
    rounded = [round(fps, 1) for fps in fps_list]
    if len(fps_list) > 1:
        mean_fps = sum(fps_list) / len(fps_list)
        times = [round(1000 / fps, 1) for fps in fps_list]
        print(
            f'Overall fps: {rounded}[{mean_fps:.1f}] img / s, '
            f'times per image: {times}[{1000 / mean_fps:.1f}] ms / img'
        )
    else:
        print(
            f'Overall fps: {fps_list[0]:.1f} img / s, times per image: '
            f'{1000 / fps_list[0]:.1f} ms / img'
        )
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    memory = f'max RSS memory: {max_rss:.0f} MB'
    if torch.cuda.is_available():
        memory += f', max CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MB'
    print(memory, flush=True)
    return fps_list


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with report_errors(args.config):
        run(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())

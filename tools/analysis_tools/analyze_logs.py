"""Plot training curves and summarise iteration times from mmengine's json scalar logs.

Usage:
    python tools/analysis_tools/analyze_logs.py plot_curve LOG.json [LOG2.json ...]
        [--keys loss segm_mAP] [--out curve.png] [--legend L1 L2 ...] [--title T]
    python tools/analysis_tools/analyze_logs.py cal_train_time LOG.json [--include-outliers]

The logs are the ``<work_dir>/<timestamp>/vis_data/<timestamp>.json`` (or ``scalars.json``)
files that mmengine's ``LocalVisBackend`` writes: one json record per line, training records
with ``epoch`` (epoch-based loops), ``iter`` and ``step`` (the global iteration), validation
records with the metrics (``coco/segm_mAP`` ...) and ``step`` (the epoch, or the iteration of
an iteration-based loop). ``--keys`` match exactly or without the evaluator prefix
(``segm_mAP`` finds ``coco/segm_mAP``). Training keys are plotted against the iteration,
validation metrics against the epoch, one panel per key and one line per log.

``cal_train_time`` reads the ``time`` of the training records, which mmengine averages over the
``log_processor.window_size`` last iterations, and reports the average per epoch (without the
first record of each epoch unless ``--include-outliers``), the slowest and fastest epoch and the
overall average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np

from polarmask.engine.cli import report_errors


def load_json_log(path: str) -> dict[str, list[dict]]:
    """Split an mmengine scalars log into training and validation records.

    Returns:
        dict: ``train`` (records with ``iter``) and ``val`` (the others), in file order.

    Raises:
        FileNotFoundError: the log does not exist.
        ValueError: naming the file and line of a record that is not a json object.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'log {path!r} does not exist')
    records: dict[str, list[dict]] = dict(train=[], val=[])
    with open(path) as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f'{path}:{line_number}: not a json record ({error}); pass the json scalar '
                    f'log of vis_data/, not the text .log'
                ) from error
            if not isinstance(record, dict):
                raise ValueError(f'{path}:{line_number}: expected a json object per line')
            records['train' if 'iter' in record else 'val'].append(record)
    return records


def _available_keys(records: dict[str, list[dict]]) -> dict[str, list[str]]:
    bookkeeping = {'epoch', 'iter', 'step'}
    return {
        split: sorted({key for record in items for key in record} - bookkeeping)
        for split, items in records.items()
    }


def resolve_key(records: dict[str, list[dict]], key: str, path: str) -> tuple[str, str]:
    """Find ``key`` in a log, exactly or without its ``prefix/``.

    Returns:
        tuple: (split, the key as logged), split being ``train`` or ``val``.

    Raises:
        LookupError: listing the available keys when ``key`` is missing or ambiguous.
    """
    available = _available_keys(records)
    for split in ('train', 'val'):
        if key in available[split]:
            return split, key
    matches = [
        (split, logged)
        for split in ('train', 'val')
        for logged in available[split]
        if logged.rsplit('/', 1)[-1] == key
    ]
    if len(matches) == 1:
        return matches[0]
    listing = '; '.join(f'{split}: {", ".join(keys) or "-"}' for split, keys in available.items())
    if matches:
        raise LookupError(
            f'{path}: key {key!r} is ambiguous ({", ".join(m for _, m in matches)}); '
            f'give the full name'
        )
    raise LookupError(f'{path}: no key {key!r} in the log. Available keys: {listing}')


def curve(records: dict[str, list[dict]], split: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one key: x is ``step`` (the iteration for training, epoch for validation)."""
    points = [
        (record.get('step', index + 1), record[key])
        for index, record in enumerate(records[split])
        if key in record
    ]
    xs, ys = zip(*points, strict=True)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def plot_curve(args: argparse.Namespace) -> None:
    """Draw one panel per key with one line per log; save to ``args.out``."""
    import matplotlib

    matplotlib.use(args.backend or 'Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    logs = [(path, load_json_log(path)) for path in args.json_logs]
    legend = args.legend
    if legend is None:
        legend = [
            f'{os.path.splitext(os.path.basename(path))[0]}_{key}'
            for path in args.json_logs
            for key in args.keys
        ]
    if len(legend) != len(args.json_logs) * len(args.keys):
        raise ValueError(
            f'--legend has {len(legend)} labels; it needs one per log and key '
            f'({len(args.json_logs)} x {len(args.keys)}), log by log'
        )
    if args.out is None and (args.backend or 'Agg').lower() == 'agg':
        raise ValueError('pass --out FILE to save the figure (or --backend TkAgg to show it)')

    figure, axes = plt.subplots(len(args.keys), 1, figsize=(8, 3 * len(args.keys)), squeeze=False)
    for key_index, key in enumerate(args.keys):
        ax = axes[key_index, 0]
        for log_index, (path, records) in enumerate(logs):
            split, logged = resolve_key(records, key, path)
            xs, ys = curve(records, split, logged)
            label = legend[log_index * len(args.keys) + key_index]
            if split == 'val':
                by_epoch = any('epoch' in record for record in records['train'])
                ax.plot(xs, ys, marker='o', label=label)
                ax.set_xlabel('epoch' if by_epoch else 'iter')
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            else:
                ax.plot(xs, ys, linewidth=0.8, label=label)
                ax.set_xlabel('iter')
            ax.set_ylabel(key)
        ax.legend()
        ax.grid(True, alpha=0.3)
    if args.title is not None:
        figure.suptitle(args.title)
    figure.tight_layout()
    if args.out is None:
        plt.show()
    else:
        figure.savefig(args.out)
        print(f'save curve to: {args.out}')
    plt.close(figure)


def train_time_stats(records: dict[str, list[dict]], include_outliers: bool) -> dict:
    """Per-epoch average ``time`` of the training records and the summary figures.

    Returns:
        dict: ``epochs`` (epoch numbers), ``epoch_means`` (s/iter), ``slowest``/``fastest``
        (epoch numbers), ``std`` over epochs and ``mean`` over all kept records (s/iter).

    Raises:
        LookupError: no training record has a ``time`` to average.
    """
    per_epoch: dict[int, list[float]] = defaultdict(list)
    for record in records['train']:
        if 'time' in record:
            per_epoch[record.get('epoch', 1)].append(float(record['time']))
    kept = {
        epoch: times if include_outliers else times[1:]
        for epoch, times in sorted(per_epoch.items())
    }
    kept = {epoch: times for epoch, times in kept.items() if times}
    if not kept:
        raise LookupError(
            'no training iteration times left to average: log more often than once per epoch '
            '(default_hooks.logger.interval) or pass --include-outliers'
        )
    epochs = list(kept)
    means = np.array([np.mean(times) for times in kept.values()])
    return dict(
        epochs=epochs,
        epoch_means=means.tolist(),
        slowest=epochs[int(means.argmax())],
        fastest=epochs[int(means.argmin())],
        std=float(means.std()),
        mean=float(np.mean(np.concatenate([np.asarray(t) for t in kept.values()]))),
    )


def cal_train_time(args: argparse.Namespace) -> None:
    """Print the iteration-time summary of each log."""
    for path in args.json_logs:
        stats = train_time_stats(load_json_log(path), args.include_outliers)
        means = dict(zip(stats['epochs'], stats['epoch_means'], strict=True))
        print(f'-----Analyze train time of {path}-----')
        print(
            f'slowest epoch {stats["slowest"]}, average time is '
            f'{means[stats["slowest"]]:.4f} s/iter'
        )
        print(
            f'fastest epoch {stats["fastest"]}, average time is '
            f'{means[stats["fastest"]]:.4f} s/iter'
        )
        print(f'time std over epochs is {stats["std"]:.4f}')
        print(f'average iter time: {stats["mean"]:.4f} s/iter\n')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Analyze json logs')
    subparsers = parser.add_subparsers(dest='task', required=True, help='task')
    plot = subparsers.add_parser('plot_curve', help='plot curves of keys of json logs')
    plot.add_argument('json_logs', nargs='+', help='json scalar logs')
    plot.add_argument(
        '--keys', nargs='+', default=['segm_mAP'], help='keys to plot (e.g. loss segm_mAP)'
    )
    plot.add_argument('--title', help='figure title')
    plot.add_argument(
        '--legend', nargs='+', help='one label per log and key (default: <log>_<key>)'
    )
    plot.add_argument('--backend', help='matplotlib backend (default: Agg)')
    plot.add_argument('--out', help='output image (.png, .pdf, ...)')
    times = subparsers.add_parser('cal_train_time', help='average iteration time per epoch')
    times.add_argument('json_logs', nargs='+', help='json scalar logs')
    times.add_argument(
        '--include-outliers',
        action='store_true',
        help='also average the first record of each epoch',
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with report_errors(f'analyze_logs.py {args.task}'):
        if args.task == 'plot_curve':
            plot_curve(args)
        else:
            cal_train_time(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())

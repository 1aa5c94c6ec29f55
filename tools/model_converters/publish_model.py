"""Prepare a checkpoint for release: weights and meta only, named after its sha256.

Usage:
    python tools/model_converters/publish_model.py IN.pth OUT.pth [--config CONFIG]
        [--save-keys meta state_dict]

Keeps ``state_dict`` and ``meta`` (epoch, iteration, the config text ``cfg``, ``dataset_meta``
with the class names, versions) and drops the training state: optimizer, param schedulers and
message hub (also one stored inside ``meta``). The config in ``meta['cfg']`` (which
``tools/train.py`` stores in every checkpoint) makes the published file alone enough for
``init_detector`` and ``PolarMaskInferencer``; ``--config`` embeds one into a checkpoint that has
none (converted weights) or replaces it, after checking that the weights fit its model. A file
published without a config is reported. The file is named
``OUT-<first 8 hex digits of its sha256>.pth`` (mmdetection's naming) and written atomically
(temporary file + rename), so a crash never leaves a partial file under the published name. The
input is read with ``torch.load(weights_only=True)``, so the output loads that way too.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys

from mmengine.logging import print_log

from polarmask.apis import init_detector
from polarmask.engine.checkpoint import AtomicLocalBackend, checkpoint_bytes, load_local_checkpoint
from polarmask.engine.cli import report_errors
from polarmask.utils.config import embedded_config

DEFAULT_SAVE_KEYS = ('meta', 'state_dict')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Process a checkpoint to be published')
    parser.add_argument('in_file', help='input checkpoint filename')
    parser.add_argument('out_file', help='output checkpoint filename (the hash is appended)')
    parser.add_argument(
        '--config', help="config to embed as meta['cfg'] (the weights must fit its model)"
    )
    parser.add_argument(
        '--save-keys',
        nargs='+',
        default=list(DEFAULT_SAVE_KEYS),
        help='top-level keys of the checkpoint to keep',
    )
    return parser.parse_args(argv)


def process_checkpoint(
    in_file: str,
    out_file: str,
    save_keys: list[str] | tuple[str, ...] = DEFAULT_SAVE_KEYS,
    config: str | None = None,
) -> tuple[str, str, list[str]]:
    """Strip ``in_file`` to ``save_keys`` and publish it as ``<out_file>-<sha8>.pth``.

    Args:
        in_file: checkpoint to publish.
        out_file: output name; a ``.pth`` suffix is replaced by ``-<sha8>.pth``.
        save_keys: top-level keys to keep.
        config: config file to embed as ``meta['cfg']`` in place of the checkpoint's.

    Returns:
        tuple: (path of the published file, its hex sha256, keys that were dropped).

    Raises:
        KeyError: naming the file when it has no ``state_dict``.
        ValueError: the weights do not fit ``config``'s model.
    """
    checkpoint = load_local_checkpoint(in_file, map_location='cpu')
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise KeyError(
            f'checkpoint {in_file!r} has no "state_dict": publish a checkpoint written by '
            f'tools/train.py (or a dict with a "state_dict" entry)'
        )
    dropped = [key for key in checkpoint if key not in save_keys]
    published = {key: value for key, value in checkpoint.items() if key in save_keys}
    if isinstance(published.get('meta'), dict) and 'message_hub' in published['meta']:
        published['meta'] = {k: v for k, v in published['meta'].items() if k != 'message_hub'}
        dropped.append('meta.message_hub')
    if config is not None:
        # init_detector checks that the weights fit the config's model.
        cfg_text = init_detector(config, in_file).cfg.pretty_text
        published['meta'] = dict(published.get('meta') or {}, cfg=cfg_text)
    if isinstance(published.get('meta'), dict) and published['meta'].get('cfg'):
        embedded_config(published['meta'], in_file)  # it must parse
    else:
        print_log(
            "the published file carries no config (meta['cfg']): init_detector and "
            'PolarMaskInferencer will need the config file as well; embed it with --config '
            'CONFIG',
            logger='current',
            level=logging.WARNING,
        )

    stem = out_file[: -len('.pth')] if out_file.endswith('.pth') else out_file
    data = checkpoint_bytes(published)
    sha256 = hashlib.sha256(data).hexdigest()
    final_file = f'{stem}-{sha256[:8]}.pth'
    AtomicLocalBackend().put(data, final_file)
    return final_file, sha256, dropped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with report_errors(args.in_file):
        final_file, sha256, dropped = process_checkpoint(
            args.in_file, args.out_file, args.save_keys, args.config
        )
    if dropped:
        print(f'removed: {", ".join(dropped)}')
    size = os.path.getsize(final_file) / 2**20
    print(f'published {final_file} ({size:.1f} MiB, sha256 {sha256})')
    return 0


if __name__ == '__main__':
    sys.exit(main())

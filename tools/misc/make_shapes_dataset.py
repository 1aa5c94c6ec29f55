"""Generate the synthetic shapes dataset (the demo config's data, or a variant of it).

``python tools/misc/make_shapes_dataset.py --out data/shapes [--num-train 1000] [--num-val 100]
[--seed 0] [--image-size H W | --side-range MIN MAX] [--force]``

The demo config (``configs/polarmask/demo/polar_shapes_r18.py``) generates its data with
``--image-size 160 160``; without ``--image-size`` each image side is drawn from ``--side-range``.

Writes ``OUT/{train,val}/*.jpg`` and ``OUT/annotations/instances_{train,val}.json`` (COCO format)
with :func:`polarmask.datasets.shapes_generator.make_shapes_dataset`, then prints the images,
instances per category and file sizes of each split. An existing complete dataset is kept unless
``--force``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from polarmask.datasets.shapes_generator import make_shapes_dataset


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Generate the synthetic shapes dataset (COCO).')
    parser.add_argument('--out', default='data/shapes', help='dataset root to create')
    parser.add_argument('--num-train', type=int, default=1000, help='train images')
    parser.add_argument('--num-val', type=int, default=100, help='val images')
    parser.add_argument('--seed', type=int, default=0, help='seed of the whole dataset')
    parser.add_argument(
        '--image-size',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='fixed image size; by default each side is drawn from --side-range',
    )
    parser.add_argument(
        '--side-range',
        type=int,
        nargs=2,
        default=(192, 320),
        metavar=('MIN', 'MAX'),
        help='inclusive range of each image side in pixels',
    )
    parser.add_argument('--img-format', choices=('jpg', 'png'), default='jpg')
    parser.add_argument('--force', action='store_true', help='regenerate an existing dataset')
    return parser.parse_args()


def _mib(path: Path) -> str:
    files = path.rglob('*') if path.is_dir() else [path]
    return f'{sum(f.stat().st_size for f in files if f.is_file()) / 2**20:.1f} MiB'


def _encoding(segmentation: list | dict) -> str:
    if isinstance(segmentation, list):
        return 'polygon'
    return 'uncompressed RLE' if isinstance(segmentation['counts'], list) else 'RLE'


def print_summary(summary: dict, seconds: float) -> None:
    """Print images, instances per category, encodings and sizes of each split."""
    action = 'generated' if summary['generated'] else 'kept as it is (--force regenerates it)'
    print(f'{summary["root"]}: {action} in {seconds:.1f} s')
    for split, ann_file in summary['ann_files'].items():
        with open(ann_file, encoding='utf-8') as f:
            coco = json.load(f)
        per_category = Counter(ann['category_id'] for ann in coco['annotations'])
        encodings = Counter(_encoding(ann['segmentation']) for ann in coco['annotations'])
        img_dir = Path(summary['img_dirs'][split])
        print(
            f'  {split}: {summary["num_images"][split]} images in {img_dir} ({_mib(img_dir)}), '
            f'{summary["num_instances"][split]} instances in {ann_file} ({_mib(Path(ann_file))})'
        )
        categories = [
            f'{c["name"]} (id {c["id"]}): {per_category[c["id"]]}' for c in coco['categories']
        ]
        print(f'    per category: {", ".join(categories)}')
        print(f'    encodings: {", ".join(f"{k}: {v}" for k, v in sorted(encodings.items()))}')


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    summary = make_shapes_dataset(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        seed=args.seed,
        image_size=args.image_size,
        side_range=tuple(args.side_range),
        img_format=args.img_format,
        force=args.force,
    )
    print_summary(summary, time.perf_counter() - start)


if __name__ == '__main__':
    main()

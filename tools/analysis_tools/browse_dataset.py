"""Draw training samples after the pipeline with their polar targets.

``python tools/analysis_tools/browse_dataset.py CONFIG --output-dir DIR [--not-show]
[--show-interval 2] [--max-images N] [--cfg-options k=v ...]``

Each sample of ``train_dataloader.dataset`` goes through the training pipeline (resize, flip,
``PolarContours``) and is drawn on the network input with, per instance in its own colour, the
ground-truth contour, the mass centre (large dot), the positive points (small dots) that
``PolarTarget`` assigns to it with the model's strides, regress ranges, sampling radius and
number of rays, and each positive's target rays to the contour. Images are written to
``DIR/<image file name>.png`` (extension kept: ``a.jpg.png``, so ``a.jpg`` and ``a.png`` do not
overwrite each other) and shown in a window unless ``--not-show``; without a display they are
only written (with ``--output-dir``) or the command stops with one line saying so.

Naming convention for shapes: P points, G instances, R rays.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
from collections.abc import Sequence

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor

from polarmask.engine.cli import ConfigOptions, report_errors
from polarmask.registry import DATASETS, MODELS
from polarmask.structures import DetDataSample
from polarmask.structures.polar import featmap_sizes_for, rays_to_polygons
from polarmask.utils import register_all_modules
from polarmask.visualization import draw_polar_targets, show_or_write


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw training samples with polar targets')
    parser.add_argument('config', help='config file')
    parser.add_argument('--output-dir', help='write the drawings to this folder')
    parser.add_argument('--not-show', action='store_true', help='do not show a window')
    parser.add_argument(
        '--show-interval', type=float, default=2.0, help='seconds each image is shown'
    )
    parser.add_argument(
        '--max-images', type=int, default=None, help='draw at most this many samples'
    )
    parser.add_argument(
        '--scale', type=float, default=1.0, help='enlarge the drawings (e.g. 3 for small inputs)'
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptions, help='override config values, k=v'
    )
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error(f'--scale must be > 0 (got {args.scale})')
    if args.not_show and args.output_dir is None:
        parser.error('nothing to do: give --output-dir, or drop --not-show to show the images')
    return args


def positive_targets(
    head: torch.nn.Module, data_sample: DetDataSample, pad_size_divisor: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    """The positive points of one training sample and their target rays, as training sees them.

    Points are those of the input padded to a multiple of ``pad_size_divisor`` (the data
    preprocessor's padding); the targets come from the head's own ``PolarTarget``.

    Args:
        head: a ``PolarMaskHead`` (its strides, ``target_generator``, ``num_classes``,
            ``angle_convention``).
        data_sample: a packed sample with ``gt_instances`` (``bboxes``, ``labels``,
            ``contours``, ``centers``) and ``img_shape``.
        pad_size_divisor: the data preprocessor's padding divisor.

    Returns:
        tuple: ``points`` (P, 2) xy positives, ``polygons`` (P, R, 2) xy ends of their target
        rays, ``instances`` (P,) index of the gt each positive is assigned to.
    """
    gt_instances = data_sample.gt_instances
    height, width = data_sample.img_shape[:2]
    divisor = pad_size_divisor
    pad_shape = (-(-height // divisor) * divisor, -(-width // divisor) * divisor)
    featmap_sizes = featmap_sizes_for(pad_shape, head.strides)
    labels, bbox_targets, ray_targets = head.target_generator.get_targets(
        featmap_sizes, [gt_instances], head.num_classes
    )  # (1, P), (1, P, 4), (1, P, R)
    positive = labels[0] < head.num_classes
    mlvl_points = head.prior_points(featmap_sizes, torch.float32, torch.device('cpu'))
    points = torch.cat(mlvl_points)[positive]
    polygons = rays_to_polygons(points, ray_targets[0][positive], None, head.angle_convention)
    # The gt of a positive is the one whose box its l, t, r, b targets reach.
    distances = bbox_targets[0][positive]
    boxes = torch.cat((points - distances[:, :2], points + distances[:, 2:]), dim=1)  # (P, 4)
    gaps = (boxes[:, None] - gt_instances.bboxes[None].float()).abs().sum(-1)  # (P, G)
    instances = gaps.argmin(dim=1) if len(points) else torch.zeros(0, dtype=torch.long)
    return points, polygons, instances


def _unlearned_note(labels: Tensor, instances: Tensor, class_names: Sequence[str] | None) -> str:
    """``'; no positive point, nothing learns: #2 circle, ...'`` or ``''`` when all are learned.

    Args:
        labels: (G,) labels of the sample's instances.
        instances: (P,) index of the instance each positive point is assigned to.
        class_names: the dataset's class names.
    """
    learned = torch.bincount(instances, minlength=len(labels)) > 0  # (G,)
    unlearned = [
        f'#{index} {class_names[label] if class_names else f"class {label}"}'
        for index, (label, is_learned) in enumerate(
            zip(labels.tolist(), learned.tolist(), strict=True)
        )
        if not is_learned
    ]
    return f'; no positive point, nothing learns: {", ".join(unlearned)}' if unlearned else ''


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with report_errors(args.config):
        register_all_modules()
        if not osp.isfile(args.config):
            raise FileNotFoundError(f"config '{args.config}' does not exist")
        show = show_or_write(not args.not_show, args.output_dir, '--output-dir DIR --not-show')
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        head = MODELS.build(cfg.model.bbox_head)
        pad_size_divisor = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1)
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        class_names = dataset.metainfo.get('classes')
        num_images = len(dataset) if args.max_images is None else min(args.max_images, len(dataset))
        if args.output_dir is not None:
            os.makedirs(args.output_dir, exist_ok=True)
        for index in range(num_images):
            item = dataset[index]
            data_sample = item['data_samples']
            gt_instances = data_sample.gt_instances
            if 'contours' not in gt_instances:
                raise KeyError(
                    f'{args.config}: the training pipeline gives no contours: put '
                    "dict(type='PolarContours') after the geometric transforms"
                )
            points, polygons, instances = positive_targets(head, data_sample, pad_size_divisor)
            img = np.ascontiguousarray(item['inputs'].permute(1, 2, 0).numpy())  # BGR
            scale = args.scale
            drawn = draw_polar_targets(
                mmcv.imrescale(img, scale) if scale != 1 else img,
                [contour * scale for contour in gt_instances.contours],
                gt_instances.centers * scale,
                gt_instances.labels,
                points * scale,
                polygons * scale,
                instances,
                class_names=class_names,
            )
            name = osp.basename(data_sample.img_path)
            if args.output_dir is not None:
                mmcv.imwrite(drawn, osp.join(args.output_dir, f'{name}.png'))
            note = _unlearned_note(gt_instances.labels, instances, class_names)
            print(
                f'{data_sample.img_path}: {len(gt_instances.labels)} instances, '
                f'{len(points)} positive points{note}'
            )
            if show:
                mmcv.imshow(drawn, win_name=name, wait_time=int(args.show_interval * 1000))


if __name__ == '__main__':
    main()

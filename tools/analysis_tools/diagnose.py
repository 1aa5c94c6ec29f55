"""Where the AP goes: detection against localisation, by object size, level and contact.

``python tools/analysis_tools/diagnose.py CONFIG CHECKPOINT [--sweep] [--loss-batches N]
[--out diag.json] [--cfg-options k=v ...]``

Runs the model once over the test split with its annotations and prints

* segm AP of the model and the ceiling: ideal ray polygons of the ground truth at its own
  resolution (what the head's R rays from each mass centre can score, rasterised as the head's
  test config says);
* per instance-size bin, per pyramid level and for touching against free-standing instances:
  positives per instance and the loss weight they carry (summed polar-centerness targets),
  mean mask IoU of the ceiling polygon, of the best point inside the box whatever its score
  (``oracle``) and of the best final detection of the right class, and recall at IoU 0.5
  before NMS (after ``nms_pre`` and ``score_thr``) and after it (right class / any class);
* with ``--sweep``, segm AP for post-processing settings around the config's (score
  threshold, ``nms_pre``, NMS IoU, ``max_per_img``, ``mask_nms``, centerness factor), from
  the same outputs;
* with ``--loss-batches N``, the losses of N test batches of the train split and of the test
  split (eval mode, no augmentation): a gap is overfitting, equal losses a capacity limit.

The other figures are in network-input pixels; ``--out`` writes all of them as json.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from typing import Any

from mmengine.config import DictAction

from polarmask.analysis.diagnostics import (
    SegmEvaluator,
    collect,
    diagnostic_dataloader,
    ground_truth,
    instance_records,
    mean_losses,
    summarize,
)
from polarmask.analysis.ground_truth import config_dataset_meta, config_ground_truth
from polarmask.apis import init_detector
from polarmask.engine.cli import report_errors
from polarmask.utils import register_all_modules
from polarmask.utils.config import load_config

TABLE_COLUMNS = (
    ('instances', '{:d}'),
    ('positives', '{:.1f}'),
    ('loss_weight', '{:.2f}'),
    ('ceiling_iou', '{:.3f}'),
    ('oracle_iou', '{:.3f}'),
    ('final_iou', '{:.3f}'),
    ('pre_nms_recall', '{:.3f}'),
    ('final_recall', '{:.3f}'),
    ('final_recall_any_class', '{:.3f}'),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Where the AP of a trained PolarMask goes')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--sweep', action='store_true', help='AP of post-processing settings')
    parser.add_argument(
        '--loss-batches', type=int, default=0, help='compare train and test losses on N batches'
    )
    parser.add_argument('--out', help='write every figure to this json file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings')
    return parser.parse_args(argv)


def sweep_settings(test_cfg: dict) -> list[tuple[str, dict, float | None]]:
    """(name, test_cfg, centerness_factor or None) around the config's post-processing."""
    nms_iou = test_cfg.get('nms', {}).get('iou_threshold', 0.5)
    settings: list[tuple[str, dict, float | None]] = [('as configured', test_cfg, None)]

    def variant(name: str, factor: float | None = None, **changes: Any) -> None:
        cfg = copy.deepcopy(test_cfg)
        for key, value in changes.items():
            if key in ('iou_threshold', 'class_agnostic'):
                cfg['nms'] = dict(cfg.get('nms', dict(type='nms')), **{key: value})
            else:
                cfg[key] = value
        settings.append((name, cfg, factor))

    for thr in (0.02, 0.1, 0.2):
        variant(f'score_thr {thr}', score_thr=thr)
    for iou in sorted({0.3, 0.4, 0.6, 0.7} - {nms_iou}):
        variant(f'NMS IoU {iou}', iou_threshold=iou)
    for nms_pre in (100, 1000):
        variant(f'nms_pre {nms_pre}', nms_pre=nms_pre)
    for max_per_img in (10, 50, 100):
        variant(f'max_per_img {max_per_img}', max_per_img=max_per_img)
    variant('mask_nms', mask_nms=True)
    variant('class-agnostic NMS', class_agnostic=True)
    for iou in (0.6, 0.7):
        variant(f'class-agnostic, IoU {iou}', class_agnostic=True, iou_threshold=iou)
    for factor in (0.0, 1.0, 1e6):
        name = 'score = cls only' if factor == 1e6 else f'centerness_factor {factor}'
        variant(name, factor=factor)
    return settings


def print_table(title: str, rows: list[dict]) -> None:
    print(f'\n{title}')
    header = ['group'] + [name for name, _ in TABLE_COLUMNS]
    print(' | '.join(header))
    for row in rows:
        cells = [row['group']] + [fmt.format(row[name]) for name, fmt in TABLE_COLUMNS]
        print(' | '.join(cells))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with report_errors(args.config):
        cfg = load_config(args.config, args.cfg_options)
        register_all_modules()
        model = init_detector(cfg, args.checkpoint)
        head = model.bbox_head
        images = collect(model, diagnostic_dataloader(cfg, 'test'))
        evaluator = SegmEvaluator(
            config_dataset_meta(cfg)['ann_file'], config_ground_truth(cfg).cat_ids
        )
        report: dict[str, Any] = dict(
            model_ap=evaluator.model_ap(images, head),
            ceiling_ap=evaluator.ceiling_ap(
                ground_truth(diagnostic_dataloader(cfg, 'test', resize=False)), head
            ),
        )
        print(f'segm AP of the model:   {report["model_ap"]}')
        print(
            f'segm AP of the ceiling: {report["ceiling_ap"]} ({head.num_rays} ideal rays of the '
            'ground truth at its own resolution)'
        )
        records = instance_records(images, head)
        report['instances'] = records
        for groups in ('size', 'level', 'touching'):
            report[f'by_{groups}'] = summarize(records, groups)
            print_table(f'by {groups} (network-input pixels)', report[f'by_{groups}'])
        if args.sweep:
            report['sweep'] = []
            print('\npost-processing sweep: segm AP / AP50 / AP75 / AR@100')
            configured_factor = head.centerness_factor
            for name, test_cfg, factor in sweep_settings(dict(head.test_cfg)):
                if name == 'as configured':
                    ap = report['model_ap']
                else:
                    head.centerness_factor = configured_factor if factor is None else factor
                    ap = evaluator.model_ap(images, head, test_cfg)
                    head.centerness_factor = configured_factor
                report['sweep'].append(dict(setting=name, **ap))
                figures = ' / '.join(f'{ap[key]:.3f}' for key in ('AP', 'AP50', 'AP75', 'AR100'))
                print(f'  {name:<22} {figures}')
        if args.loss_batches:
            report['losses'] = {
                split: mean_losses(model, diagnostic_dataloader(cfg, split), args.loss_batches)
                for split in ('train', 'test')
            }
            for split, losses in report['losses'].items():
                print(f'{split} losses: ' + ', '.join(f'{k} {v:.4f}' for k, v in losses.items()))
        if args.out:
            with open(args.out, 'w', encoding='utf-8') as f:
                json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())

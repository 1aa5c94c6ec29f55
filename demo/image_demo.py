"""Run a PolarMask model on an image or a folder of images.

``python demo/image_demo.py INPUTS CONFIG [CKPT | --weights CKPT] [--out-dir outputs]
[--device cpu] [--pred-score-thr 0.3] [--batch-size 1] [--cfg-options k=v ...]``

The checkpoint may follow the config, as in mmdetection's demos (``--score-thr`` is accepted for
``--pred-score-thr`` too); without one the model keeps its random weights.

For each image, writes ``OUT_DIR/vis/<file name>.png`` (filled translucent masks, polygon
outlines, class names and scores) and ``OUT_DIR/preds/<file name>.json`` (``img_path``,
``height``, ``width``, ``classes``, and per detection ``labels``, ``class_names``, ``scores``,
``bboxes`` x1y1x2y2, ``polygons`` [[x, y] x R] and ``masks`` COCO RLE), for the detections with a
score of at least ``--pred-score-thr``, all in pixels of the original image. The file name keeps
its extension (``a.jpg`` -> ``vis/a.jpg.png``), so ``a.jpg`` and ``a.png`` do not overwrite each
other. A folder is searched recursively; its sub-folders are kept in the output names.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import time

import mmcv

from polarmask.apis import draw_result, inference_detector, init_detector
from polarmask.engine.cli import add_demo_arguments, parse_demo_args, report_errors

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='PolarMask on images: drawings + JSON')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config', help='config file')
    add_demo_arguments(parser, batch_size=1)
    parser.add_argument('--out-dir', default='outputs', help='output folder (vis/, preds/)')
    return parse_demo_args(parser, argv)


def list_images(inputs: str) -> list[tuple[str, str]]:
    """``(path, output name)`` of the input image or of every image in a folder.

    The output name is the file name with its extension, relative to the folder.
    """
    if osp.isfile(inputs):
        return [(inputs, osp.basename(inputs))]
    if not osp.isdir(inputs):
        raise FileNotFoundError(f"input '{inputs}' does not exist: pass an image or a folder")
    images = []
    for root, _, files in os.walk(inputs):
        for file in files:
            if file.lower().endswith(IMAGE_EXTENSIONS):
                path = osp.join(root, file)
                images.append((path, osp.relpath(path, inputs)))
    if not images:
        raise FileNotFoundError(
            f"folder '{inputs}' has no image files ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return sorted(images)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with report_errors(args.config):
        images = list_images(args.inputs)
        model = init_detector(args.config, args.weights, args.device, args.cfg_options)
        if args.weights is None:
            print('warning: no checkpoint given, the model has random weights')
        palette = model.dataset_meta.get('palette')
        start = time.perf_counter()
        for first in range(0, len(images), args.batch_size):
            chunk = images[first : first + args.batch_size]
            results = inference_detector(model, [path for path, _ in chunk])
            for (path, name), result in zip(chunk, results, strict=True):
                result = result.select(args.pred_score_thr)
                vis_file = osp.join(args.out_dir, 'vis', f'{name}.png')
                pred_file = osp.join(args.out_dir, 'preds', f'{name}.json')
                drawn = draw_result(mmcv.imread(path), result, args.pred_score_thr, palette)
                mmcv.imwrite(drawn, vis_file)
                os.makedirs(osp.dirname(pred_file), exist_ok=True)
                with open(pred_file, 'w', encoding='utf-8') as file:
                    json.dump(dict(result.to_dict(), score_thr=args.pred_score_thr), file)
                print(f'{path}: {len(result)} instances -> {vis_file}, {pred_file}')
        seconds = time.perf_counter() - start
        print(f'{len(images)} images in {seconds:.1f} s; results in {args.out_dir}')


if __name__ == '__main__':
    main()

"""COCO-format instance segmentation dataset.

Parses a COCO ``instances_*.json`` into mmengine data infos, applies the original PolarMask's
annotation and image filters (``docs/original_polarmask.md#annotation-filters``) as configurable
options and maps category ids to labels 0..C-1. No geometry work happens here: masks stay as the
polygons or RLE of the json and are rasterised by ``LoadAnnotations`` in the pipeline.

Fixed against the original: crowd annotations are kept as ``ignore_flag=1`` instances with their own
mask, so a crowd annotation before a normal one can no longer shift masks against boxes.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from mmengine.dataset import BaseDataset
from mmengine.fileio import load
from mmengine.logging import print_log

from polarmask.datasets.transforms import check_pipeline
from polarmask.registry import DATASETS, TRANSFORMS
from polarmask.structures.mask import is_rle, polygon_defect, segmentation_areas

DEFAULT_FILTER_CFG: dict[str, Any] = dict(
    filter_empty_gt=True, min_size=32, min_ann_area=15, min_ann_side=10, min_mask_pixels=15
)
"""The original's filters: drop images without instances or with a side < 32; drop annotations with
``area <= 15``, with both box sides < 10 or with fewer than 15 mask pixels."""

_NUM_EXAMPLES = 3


class _SkipLog:
    """Counts skipped records per reason, keeps a few examples, logs one summary line each."""

    def __init__(self, ann_file: str) -> None:
        self.ann_file = ann_file
        self.counts: dict[str, int] = defaultdict(int)
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, reason: str, example: str) -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < _NUM_EXAMPLES:
            self.examples[reason].append(example)

    def log(self, level: int = logging.WARNING) -> None:
        for reason, count in self.counts.items():
            examples = '; '.join(self.examples[reason])
            more = ', ...' if count > _NUM_EXAMPLES else ''
            print_log(
                f"CocoInsSegDataset '{self.ann_file}': {reason}: {count} (e.g. {examples}{more})",
                logger='current',
                level=level,
            )


def _is_box(bbox: Any) -> bool:
    """Whether a COCO ``bbox`` is 4 finite numbers."""
    return (
        isinstance(bbox, (list, tuple))
        and len(bbox) == 4
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)
    )


def _merge_filter_cfg(filter_cfg: dict | None) -> dict[str, Any]:
    merged = copy.deepcopy(DEFAULT_FILTER_CFG)
    unknown = set(filter_cfg or {}) - set(merged)
    if unknown:
        raise KeyError(
            f'CocoInsSegDataset: unknown filter_cfg key(s) {sorted(unknown)}; the keys are '
            f'{sorted(merged)} (set one to None to disable that filter)'
        )
    merged.update(filter_cfg or {})
    return merged


@DATASETS.register_module()
class CocoInsSegDataset(BaseDataset):
    """COCO instance segmentation (polygons, uncompressed and compressed RLE).

    Each data info is ``dict(img_path, img_id, height, width, instances)`` where every instance is
    ``dict(bbox=[x1, y1, x2, y2], bbox_label, mask, ignore_flag)``: the box in original-image pixels
    with the inclusive ``+1`` convention (COCO ``[x, y, w, h]`` -> ``[x, y, x + w - 1, y + h - 1]``,
    clipped to the image), the label in 0..C-1, the json's polygons (only those with >= 3 points) or
    RLE, and ``ignore_flag=1`` for crowd regions.

    Classes: by default every category of the json, in json order. ``metainfo=dict(classes=(...))``
    selects categories by name; label i is ``classes[i]``; annotations of other categories are
    dropped. The metainfo gains ``cat_ids`` (the category id of each label) and ``ann_file``.

    Filters (``filter_cfg``; ``None`` or a missing key means the default, a key set to ``None``
    disables that filter):

    * ``min_ann_area`` (15): drop an annotation whose json ``area`` is ``<=`` this (the mask's
      pixel count when the json has no ``area``);
    * ``min_ann_side`` (10): drop an annotation whose box width *and* height are both below this;
    * ``min_mask_pixels`` (15): drop an annotation whose rasterised mask (pycocotools, as
      ``annToMask``) has fewer pixels; this rasterises every annotation that passes the other
      filters once at load time (about 15-30 us each with pycocotools, ~20 s for COCO train2017);
    * ``min_size`` (32): drop an image whose shorter side is below this (not in ``test_mode``);
    * ``filter_empty_gt`` (True): drop an image without any non-crowd instance (not in
      ``test_mode``).

    Annotations with ``ignore=1``, without a segmentation, whose bbox is not 4 finite numbers or
    lies outside the image are dropped; polygons that cannot be rasterised safely (fewer than 3
    points, NaN, infinite or not numbers, reaching more than an image size outside the image:
    :func:`~polarmask.structures.mask.polygon_defect`) are dropped from their annotation. Each
    such skip is counted and logged once per reason with example annotation ids. Boxes reaching
    outside the image are clipped. Malformed jsons (invalid JSON, not COCO, duplicate image ids,
    unknown category ids, annotations of unknown images, RLE of the wrong size), missing or
    empty image files and a training set that the filters leave empty raise an error naming the
    file, the record and the fix.

    Args:
        ann_file: COCO json, relative to ``data_root`` unless absolute.
        metainfo: ``dict(classes=(...))`` to select categories by name.
        data_root: Root joined to ``ann_file`` and ``data_prefix``.
        data_prefix: ``dict(img='train2017/')``, the image folder.
        filter_cfg: See above.
        check_image_files: Check at load time that every image file exists (local paths only).
        pipeline: Transforms, as configs (built from polarmask's ``TRANSFORMS``) or callables;
            refused when they would leave the masks behind the image
            (:func:`~polarmask.datasets.transforms.check_pipeline`).
        **kwargs: Further :class:`mmengine.dataset.BaseDataset` arguments (``test_mode``,
            ``serialize_data``, ``indices``, ``lazy_init``, ``max_refetch``).
    """

    METAINFO: dict = dict()

    def __init__(
        self,
        ann_file: str = '',
        metainfo: dict | None = None,
        data_root: str = '',
        data_prefix: dict | None = None,
        filter_cfg: dict | None = None,
        check_image_files: bool = True,
        pipeline: Sequence[dict | Callable] = (),
        **kwargs: Any,
    ) -> None:
        self.check_image_files = check_image_files
        built = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        check_pipeline(built, f"{type(self).__name__} '{ann_file}'")
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(img='') if data_prefix is None else data_prefix,
            filter_cfg=_merge_filter_cfg(filter_cfg),
            pipeline=built,
            **kwargs,
        )

    def load_data_list(self) -> list[dict]:
        """Read the json, check it, map categories, parse and filter annotations."""
        raw = self._load_json()
        cat2label = self._map_categories(raw['categories'])
        known_cat_ids = {cat['id'] for cat in raw['categories']}
        images = self._index_images(raw['images'])
        anns_per_image = self._group_annotations(raw.get('annotations', []), images, known_cat_ids)

        skips = _SkipLog(self.ann_file)
        data_list = []
        for img_id, image in images.items():
            data_list.append(
                dict(
                    img_path=os.path.join(self.data_prefix.get('img', ''), image['file_name']),
                    img_id=img_id,
                    height=image['height'],
                    width=image['width'],
                    instances=self._parse_instances(
                        anns_per_image.get(img_id, []), image, cat2label, skips
                    ),
                )
            )
        skips.log()
        if self.check_image_files:
            self._check_files(data_list)
        return data_list

    def filter_data(self) -> list[dict]:
        """Drop small images and images without non-crowd instances (training only)."""
        if self.test_mode:
            return self.data_list
        min_size = self.filter_cfg['min_size']
        filter_empty = self.filter_cfg['filter_empty_gt']
        skips = _SkipLog(self.ann_file)
        kept = []
        for info in self.data_list:
            name = f"image {info['img_id']} '{os.path.basename(info['img_path'])}'"
            if min_size is not None and min(info['height'], info['width']) < min_size:
                skips.add(f'images dropped with a side < min_size={min_size}', name)
            elif filter_empty and not any(not i['ignore_flag'] for i in info['instances']):
                skips.add('images dropped without instances (filter_empty_gt=True)', name)
            else:
                kept.append(info)
        skips.log(logging.INFO)
        if not kept:
            reasons = '; '.join(f'{count} {reason}' for reason, count in skips.counts.items())
            raise ValueError(
                f"CocoInsSegDataset '{self.ann_file}': no image left for training of "
                f'{len(self.data_list)} ({reasons or "the json lists no images"}): check the '
                'annotations and the classes, or relax filter_cfg (e.g. --cfg-options '
                'train_dataloader.dataset.filter_cfg.filter_empty_gt=False)'
            )
        print_log(
            f"CocoInsSegDataset '{self.ann_file}': {len(kept)} of {len(self.data_list)} images "
            'kept for training',
            logger='current',
        )
        return kept

    def get_cat_ids(self, idx: int) -> list[int]:
        """Labels (0..C-1) of the instances of image ``idx``."""
        return [instance['bbox_label'] for instance in self.get_data_info(idx)['instances']]

    def _load_json(self) -> dict:
        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(
                f"annotation file '{self.ann_file}' does not exist: put the dataset there "
                f"(data_root '{self.data_root}') or point the config's dataset.data_root / "
                'ann_file at it, e.g. --cfg-options train_dataloader.dataset.data_root=/path/'
            )
        try:
            raw = load(self.ann_file, file_format='json')
        except ValueError as error:
            raise ValueError(
                f"annotation file '{self.ann_file}' ({os.path.getsize(self.ann_file)} bytes) is "
                f'not valid JSON ({error}): write it again (json.dump with allow_nan=False) or '
                'point ann_file at the right file'
            ) from error
        if not isinstance(raw, dict):
            raise ValueError(
                f"'{self.ann_file}' is not a COCO instances json: its top level is a "
                f'{type(raw).__name__}, not an object with images, annotations and categories'
            )
        required = (
            ('images', 'categories') if self.test_mode else ('images', 'annotations', 'categories')
        )
        for key in required:
            if key not in raw:
                raise KeyError(
                    f"'{self.ann_file}' is not a COCO instances json: it has no '{key}' key "
                    f'(found {sorted(raw)}); convert the annotations to COCO format, with '
                    "'images', 'annotations' and 'categories' lists"
                )
        return raw

    def _map_categories(self, categories: list[dict]) -> dict[int, int]:
        for index, cat in enumerate(categories):
            for key in ('id', 'name'):
                if key not in cat:
                    raise KeyError(
                        f"'{self.ann_file}': category #{index} {cat} has no '{key}'; every "
                        "category needs an 'id' and a 'name'"
                    )
        name_to_ids: dict[str, list[int]] = defaultdict(list)
        for cat in categories:
            name_to_ids[cat['name']].append(cat['id'])
        classes = self._metainfo.get('classes')
        if classes is None:
            classes = [cat['name'] for cat in categories]
        cat_ids = []
        for name in classes:
            ids = name_to_ids.get(name)
            if not ids:
                raise KeyError(
                    f"'{self.ann_file}': class '{name}' of metainfo['classes'] is not a category "
                    f'name of the json; the json has {list(name_to_ids)}'
                )
            if len(ids) > 1:
                raise ValueError(
                    f"'{self.ann_file}': category name '{name}' is used by several ids {ids}; "
                    'give each category a unique name'
                )
            cat_ids.append(ids[0])
        self._metainfo['classes'] = tuple(classes)
        self._metainfo['cat_ids'] = tuple(cat_ids)
        self._metainfo['ann_file'] = self.ann_file
        return {cat_id: label for label, cat_id in enumerate(cat_ids)}

    def _index_images(self, images: list[dict]) -> dict[int, dict]:
        index: dict[int, dict] = {}
        for position, image in enumerate(images):
            for key in ('id', 'file_name', 'height', 'width'):
                if key not in image:
                    raise KeyError(
                        f"'{self.ann_file}': image #{position} {image.get('file_name', '')!r} has "
                        f"no '{key}'; every image needs 'id', 'file_name', 'height' and 'width'"
                    )
            if image['id'] in index:
                raise ValueError(
                    f"'{self.ann_file}': duplicate image id {image['id']} "
                    f"('{index[image['id']]['file_name']}' and '{image['file_name']}'); image ids "
                    'must be unique: renumber the images and their annotations'
                )
            index[image['id']] = image
        return index

    def _group_annotations(
        self, annotations: list[dict], images: dict[int, dict], known_cat_ids: set[int]
    ) -> dict[int, list[dict]]:
        grouped: dict[int, list[dict]] = defaultdict(list)
        for position, ann in enumerate(annotations):
            ann_id = ann.get('id', f'#{position}')
            for key in ('image_id', 'category_id', 'bbox'):
                if key not in ann:
                    raise KeyError(
                        f"'{self.ann_file}': annotation {ann_id} has no '{key}'; every annotation "
                        "needs 'image_id', 'category_id', 'bbox' and 'segmentation'"
                    )
            if ann['image_id'] not in images:
                raise KeyError(
                    f"'{self.ann_file}': annotation {ann_id} refers to image id {ann['image_id']}, "
                    "which is not in 'images'; add the image or remove the annotation"
                )
            if ann['category_id'] not in known_cat_ids:
                raise KeyError(
                    f"'{self.ann_file}': annotation {ann_id} (image id {ann['image_id']}) has "
                    f"category id {ann['category_id']}, which is not in 'categories' "
                    f'(ids {sorted(known_cat_ids)}); add the category or fix the annotation'
                )
            grouped[ann['image_id']].append(ann)
        return grouped

    def _parse_instances(
        self, anns: list[dict], image: dict, cat2label: dict[int, int], skips: _SkipLog
    ) -> list[dict]:
        """Filter and convert the annotations of one image.

        As the original (``docs/original_polarmask.md#annotation-filters``).

        The cheap filters run first; only the survivors are rasterised to count mask pixels.
        """
        height, width = image['height'], image['width']
        min_area = self.filter_cfg['min_ann_area']
        min_side = self.filter_cfg['min_ann_side']
        min_pixels = self.filter_cfg['min_mask_pixels']
        candidates = []
        for ann in anns:
            where = f"annotation {ann.get('id')} of image '{image['file_name']}'"
            if ann['category_id'] not in cat2label:
                skips.add('annotations of categories not in metainfo classes', where)
                continue
            if ann.get('ignore', False):
                skips.add("annotations with 'ignore' set", where)
                continue
            segmentation = self._valid_segmentation(ann, image, where, skips)
            if segmentation is None:
                continue
            if not _is_box(ann['bbox']):
                skips.add('annotations whose bbox is not 4 finite numbers [x, y, w, h]', where)
                continue
            x, y, w, h = ann['bbox']
            if min_area is not None and 'area' in ann and ann['area'] <= min_area:
                skips.add(f'annotations with area <= min_ann_area={min_area}', where)
                continue
            if min_side is not None and w < min_side and h < min_side:
                skips.add(f'annotations with both box sides < min_ann_side={min_side}', where)
                continue
            bbox = [max(x, 0), max(y, 0), min(x + w - 1, width - 1), min(y + h - 1, height - 1)]
            if bbox[2] < bbox[0] or bbox[3] < bbox[1]:
                skips.add('annotations with a box outside the image', where)
                continue
            if bbox != [x, y, x + w - 1, y + h - 1]:
                skips.add('boxes clipped to the image', where)
            instance = dict(
                bbox=[float(v) for v in bbox],
                bbox_label=cat2label[ann['category_id']],
                mask=segmentation,
                ignore_flag=int(bool(ann.get('iscrowd', 0))),
            )
            candidates.append((instance, ann.get('area'), where))

        if min_pixels is None and all(area is not None for _, area, _ in candidates):
            return [instance for instance, _, _ in candidates]
        pixels = segmentation_areas([i['mask'] for i, _, _ in candidates], height, width)
        instances = []
        for (instance, area, where), num_pixels in zip(candidates, pixels, strict=True):
            if min_area is not None and area is None and num_pixels <= min_area:
                skips.add(f'annotations with area <= min_ann_area={min_area}', where)
            elif min_pixels is not None and num_pixels < min_pixels:
                skips.add(f'annotations with < min_mask_pixels={min_pixels} mask pixels', where)
            else:
                instances.append(instance)
        return instances

    def _valid_segmentation(
        self, ann: dict, image: dict, where: str, skips: _SkipLog
    ) -> list | dict | None:
        """The annotation's segmentation without degenerate polygons; None to skip it."""
        segmentation = ann.get('segmentation')
        if not segmentation:
            skips.add('annotations without a segmentation', where)
            return None
        if is_rle(segmentation):
            size = list(segmentation.get('size', []))
            if size != [image['height'], image['width']]:
                raise ValueError(
                    f"'{self.ann_file}': {where} has an RLE of size {size} but the image is "
                    f'{[image["height"], image["width"]]} (height, width); fix the RLE size or '
                    "the image's height/width"
                )
            return segmentation
        if not isinstance(segmentation, list):
            skips.add('annotations whose segmentation is neither polygons nor an RLE', where)
            return None
        polygons = []
        for polygon in segmentation:
            defect = polygon_defect(polygon, image['height'], image['width'])
            if defect is None:
                polygons.append(polygon)
            else:
                skips.add(f'{defect} dropped', where)
        if not polygons:
            skips.add('annotations without a valid polygon', where)
            return None
        return polygons

    def _check_files(self, data_list: list[dict]) -> None:
        local = [info for info in data_list if '://' not in info['img_path']]
        missing = [info for info in local if not os.path.isfile(info['img_path'])]
        empty = [] if missing else [i for i in local if os.path.getsize(i['img_path']) == 0]
        for problem, bad in (('do not exist', missing), ('are empty (0 bytes)', empty)):
            if bad:
                first = bad[0]
                raise FileNotFoundError(
                    f"CocoInsSegDataset: {len(bad)} image file(s) listed in '{self.ann_file}' "
                    f"{problem}, e.g. '{first['img_path']}' (image id {first['img_id']}); fix "
                    'data_root / data_prefix=dict(img=...), replace the files or remove the '
                    'images from the json (check_image_files=False skips this check)'
                )

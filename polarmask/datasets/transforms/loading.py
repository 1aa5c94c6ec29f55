"""Loading transforms: the image file and the annotations of one data info.

Naming convention for shapes: G instances (crowd included), H x W the original image.
"""

from __future__ import annotations

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get

from polarmask.registry import TRANSFORMS
from polarmask.structures.mask import segmentations_to_masks


def check_image_size(img: np.ndarray, results: dict) -> None:
    """Raise when an image's (H, W) differs from the ``height`` / ``width`` of its json entry.

    Masks are rasterised and predictions evaluated at the json's size, so a mismatch would put
    them in the wrong place (in training as in testing). Data infos without a size (images
    given directly) are not checked.
    """
    if 'height' not in results or 'width' not in results:
        return
    expected = (results['height'], results['width'])
    if tuple(img.shape[:2]) != expected:
        raise ValueError(
            f"image '{results.get('img_path')}' (image id {results.get('img_id')}) is "
            f'{tuple(img.shape[:2])} (H, W) but its json entry says {expected}; fix '
            'height/width in the json (or an EXIF rotation of the file), otherwise masks and '
            'predictions would not align with it'
        )


@TRANSFORMS.register_module()
class LoadImageFromFile(BaseTransform):
    """Read ``results['img_path']`` into ``img`` (H, W, 3) uint8 BGR.

    Grayscale images are expanded to 3 channels and the alpha channel of RGBA images is dropped
    (OpenCV's colour decoding). Sets ``img``, ``img_shape`` and ``ori_shape`` (H, W). An image
    whose size differs from its json entry's ``height`` / ``width`` is an error
    (:func:`check_image_size`).

    Args:
        color_type: mmcv's decode flag; ``'color'`` always gives 3 channels.
        imdecode_backend: mmcv's decoding backend (``'cv2'``, ``'pillow'``, ``'turbojpeg'``).
        to_float32: Convert the image to float32.
        backend_args: mmengine file-backend arguments (``None`` for local files).
    """

    keeps_annotations_aligned = True

    def __init__(
        self,
        color_type: str = 'color',
        imdecode_backend: str = 'cv2',
        to_float32: bool = False,
        backend_args: dict | None = None,
    ) -> None:
        self.color_type = color_type
        self.imdecode_backend = imdecode_backend
        self.to_float32 = to_float32
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        try:
            content = get(path, backend_args=self.backend_args)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"LoadImageFromFile: image '{path}' (image id {results.get('img_id')}) does not "
                'exist; fix data_root / data_prefix or remove the image from the json'
            ) from error
        try:
            img = mmcv.imfrombytes(content, flag=self.color_type, backend=self.imdecode_backend)
        except cv2.error:
            img = None
        if img is None or img.size == 0:
            raise OSError(
                f"LoadImageFromFile: cannot decode image '{path}' (image id "
                f'{results.get("img_id")}, {len(content)} bytes): the file is corrupt or not an '
                'image; replace it or remove it from the json'
            )
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        check_image_size(img, results)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(color_type={self.color_type!r}, '
            f'imdecode_backend={self.imdecode_backend!r}, to_float32={self.to_float32})'
        )


@TRANSFORMS.register_module()
class LoadAnnotations(BaseTransform):
    """Turn ``results['instances']`` into arrays.

    Sets ``gt_bboxes`` float32 (G, 4) x1y1x2y2 (inclusive ``+1`` convention), ``gt_bboxes_labels``
    int64 (G,), ``gt_ignore_flags`` bool (G,) (crowd) and, with ``with_mask``, ``gt_masks`` uint8
    (G, H, W) bitmaps of the original image size (polygons and RLE via pycocotools).

    Args:
        with_bbox: Load boxes and ignore flags.
        with_label: Load labels.
        with_mask: Load masks.
    """

    keeps_annotations_aligned = True

    def __init__(self, with_bbox: bool = True, with_label: bool = True, with_mask: bool = False):
        self.with_bbox = with_bbox
        self.with_label = with_label
        self.with_mask = with_mask

    def transform(self, results: dict) -> dict:
        instances = results.get('instances', [])
        if self.with_bbox:
            results['gt_bboxes'] = np.array(
                [i['bbox'] for i in instances], dtype=np.float32
            ).reshape(-1, 4)
            results['gt_ignore_flags'] = np.array(
                [bool(i['ignore_flag']) for i in instances], dtype=bool
            )
        if self.with_label:
            results['gt_bboxes_labels'] = np.array(
                [i['bbox_label'] for i in instances], dtype=np.int64
            )
        if self.with_mask:
            if 'img' in results:
                check_image_size(results['img'], results)
            height, width = results['height'], results['width']
            results['gt_masks'] = segmentations_to_masks(
                [i['mask'] for i in instances], height, width
            )
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(with_bbox={self.with_bbox}, '
            f'with_label={self.with_label}, with_mask={self.with_mask})'
        )

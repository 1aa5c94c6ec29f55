"""CocoInsSegDataset: parsing, filters, custom classes and every bad-input case of issue 4."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

import polarmask.datasets.coco as coco_module
from polarmask.datasets import CocoInsSegDataset
from polarmask.datasets.transforms import LoadAnnotations, LoadImageFromFile


def build(root, ann_file='annotations/ann.json', **kwargs) -> CocoInsSegDataset:
    kwargs.setdefault('data_prefix', dict(img='images/'))
    return CocoInsSegDataset(ann_file=ann_file, data_root=str(root), **kwargs)


def img_ids(dataset: CocoInsSegDataset) -> list[int]:
    return [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]


@pytest.fixture
def logged(monkeypatch) -> list[str]:
    messages: list[str] = []
    monkeypatch.setattr(coco_module, 'print_log', lambda msg, **kw: messages.append(msg))
    return messages


def test_parse_boxes_labels_masks_and_crowd(coco_root):
    dataset = build(coco_root)
    assert len(dataset) == 2
    assert dataset.metainfo['classes'] == ('square', 'blob', 'bar')
    assert dataset.metainfo['cat_ids'] == (5, 2, 9)
    info = dataset.get_data_info(0)
    assert info['img_id'] == 11 and (info['height'], info['width']) == (96, 128)
    assert info['img_path'].endswith('images/a.jpg')
    crowd, square, blob, bar = info['instances']
    # the crowd comes first in the json and keeps its own mask: no shift of masks against boxes
    assert crowd['ignore_flag'] == 1 and crowd['bbox_label'] == 2
    assert isinstance(crowd['mask'], dict) and crowd['bbox'] == [5.0, 60.0, 39.0, 89.0]
    assert square == dict(
        bbox=[10.0, 10.0, 49.0, 39.0],
        bbox_label=0,
        ignore_flag=0,
        mask=[[10, 10, 50, 10, 50, 40, 10, 40]],
    )
    assert blob['bbox_label'] == 1 and isinstance(blob['mask']['counts'], str)
    assert bar['mask'] == [[60, 5, 120, 5, 120, 20, 60, 20]]  # the 2-point polygon is dropped
    results = LoadAnnotations(with_mask=True)(dict(info))
    masks = results['gt_masks']
    assert masks.shape == (4, 96, 128) and masks.dtype == np.uint8
    for mask, box in zip(masks, results['gt_bboxes'], strict=True):
        ys, xs = np.nonzero(mask)
        np.testing.assert_allclose([xs.min(), ys.min(), xs.max(), ys.max()], box, atol=1)
    # the bitmaps are pycocotools' annToMask (uncompressed RLE, polygon, compressed RLE)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(coco_root / 'annotations' / 'ann.json'))
    for index, ann_id in enumerate((100, 101, 102)):
        np.testing.assert_array_equal(masks[index], coco.annToMask(coco.anns[ann_id]))
    assert results['gt_ignore_flags'].tolist() == [True, False, False, False]
    assert results['gt_bboxes_labels'].tolist() == [2, 0, 1, 2]


def test_custom_classes_select_and_order_by_name(coco_root):
    dataset = build(coco_root, metainfo=dict(classes=('bar', 'square')))
    assert dataset.metainfo['cat_ids'] == (9, 5)
    labels = [i['bbox_label'] for i in dataset.get_data_info(0)['instances']]
    assert labels == [0, 1, 0]  # crowd bar, square, bar; the blob is dropped
    # image 12 only has a blob: no instance of the selected classes
    assert len(dataset) == 1
    with pytest.raises(KeyError, match="class 'horse'.*square"):
        build(coco_root, metainfo=dict(classes=('horse',)))


def test_annotation_filters_configurable(coco_tools, tmp_path):
    coco = coco_tools.scene()
    small = [
        dict(bbox=[0, 50, 3, 3], area=15.0, segmentation=[[0, 50, 3, 50, 3, 53, 0, 53]]),
        dict(bbox=[20, 50, 9, 9], area=81.0, segmentation=[[20, 50, 29, 50, 29, 59, 20, 59]]),
        # 12 x 1 sliver: area 40 in the json but only 12 mask pixels
        dict(bbox=[40, 50, 12, 1], area=40.0, segmentation=[[40, 50, 52, 50, 52, 51, 40, 51]]),
    ]
    for index, ann in enumerate(small):
        coco['annotations'].append(dict(ann, id=200 + index, image_id=12, category_id=5, iscrowd=0))
    coco_tools.write(tmp_path, coco)
    default = build(tmp_path).get_data_info(1)['instances']
    assert len(default) == 1
    kept = build(
        tmp_path, filter_cfg=dict(min_ann_area=None, min_ann_side=None, min_mask_pixels=None)
    ).get_data_info(1)['instances']
    assert len(kept) == 4
    only_pixels = build(tmp_path, filter_cfg=dict(min_ann_area=None, min_ann_side=None))
    assert [i['bbox'][0] for i in only_pixels.get_data_info(1)['instances']] == [10.0, 20.0]
    with pytest.raises(KeyError, match='min_mask_pixel'):
        build(tmp_path, filter_cfg=dict(min_mask_pixel=10))


def test_small_images_dropped_in_training_only(coco_tools, tmp_path):
    coco = coco_tools.scene()
    coco['images'][1]['width'] = 30
    coco['annotations'][-1]['segmentation'] = [[1, 20, 25, 25, 12, 70]]
    coco['annotations'][-1]['bbox'] = [1, 20, 24, 50]
    coco_tools.write(tmp_path, coco)
    assert img_ids(build(tmp_path)) == [11]
    assert len(build(tmp_path, filter_cfg=dict(min_size=None))) == 2
    assert len(build(tmp_path, test_mode=True)) == 2


def test_bad_missing_image_file(coco_root):
    (coco_root / 'images' / 'b.png').unlink()
    with pytest.raises(FileNotFoundError, match=r'1 image file.*ann\.json.*b\.png.*image id 12'):
        build(coco_root)
    assert len(build(coco_root, check_image_files=False)) == 2
    with pytest.raises(FileNotFoundError, match='b.png'):
        LoadImageFromFile()(dict(img_path=str(coco_root / 'images' / 'b.png'), img_id=12))


def test_bad_corrupt_jpeg(coco_root):
    path = coco_root / 'images' / 'a.jpg'
    path.write_bytes(b'\xff\xd8\xff\xe0 this is not a jpeg')
    with pytest.raises(OSError, match=r"cannot decode image '.*a\.jpg' \(image id 11"):
        build(coco_root, pipeline=[dict(type='LoadImageFromFile')])[0]


def test_bad_grayscale_and_rgba_png_become_bgr(tmp_path):
    import cv2

    gray = np.arange(48 * 40, dtype=np.uint8).reshape(48, 40)
    rgba = np.zeros((48, 40, 4), np.uint8)
    rgba[..., 2] = 200
    rgba[..., 3] = 10
    for name, img in (('gray.png', gray), ('rgba.png', rgba)):
        cv2.imwrite(str(tmp_path / name), img)
        loaded = LoadImageFromFile()(dict(img_path=str(tmp_path / name)))['img']
        assert loaded.shape == (48, 40, 3) and loaded.dtype == np.uint8
    assert (loaded[..., 2] == 200).all() and (loaded[..., :2] == 0).all()


def test_bad_polygon_with_two_points_is_counted(coco_root, logged):
    dataset = build(coco_root)
    assert dataset.get_data_info(0)['instances'][3]['mask'] == [[60, 5, 120, 5, 120, 20, 60, 20]]
    warnings = [m for m in logged if '< 3 points' in m]
    assert len(warnings) == 1 and ': 1 (e.g. annotation 103 of image' in warnings[0]


def test_bad_annotation_with_only_degenerate_polygons_is_skipped(coco_tools, coco_root, logged):
    coco = coco_tools.scene()
    coco['annotations'][1]['segmentation'] = [[10, 10, 50, 10]]  # 2 points: not a box
    coco_tools.write(coco_root, coco, paint=False)
    instances = build(coco_root).get_data_info(0)['instances']
    assert [i['bbox_label'] for i in instances] == [2, 1, 2]
    assert any('without a valid polygon: 1 (e.g. annotation 101' in m for m in logged)


def test_bad_coordinates_outside_image_are_clipped(coco_tools, tmp_path, logged):
    coco = coco_tools.scene()
    coco['annotations'][-1].update(
        bbox=[-10, 50, 100, 60], segmentation=[[-10, 50, 90, 50, 90, 110, -10, 110]]
    )
    coco_tools.write(tmp_path, coco)
    dataset = build(tmp_path)
    info = dataset.get_data_info(1)
    assert info['instances'][0]['bbox'] == [0.0, 50.0, 59.0, 79.0]
    masks = LoadAnnotations(with_mask=True)(dict(info))['gt_masks']
    assert masks.shape == (1, 80, 60) and masks[0, 50:, :].all() and not masks[0, :50].any()
    assert any('clipped' in m and 'annotation 104' in m for m in logged)

    coco['annotations'][-1].update(
        bbox=[70, 90, 10, 10], segmentation=[[70, 90, 80, 90, 80, 100, 70, 100]]
    )
    coco_tools.write(tmp_path, coco, paint=False)
    assert len(build(tmp_path, test_mode=True).get_data_info(1)['instances']) == 0


def test_bad_unknown_category_id(coco_tools, coco_root):
    coco = coco_tools.scene()
    coco['annotations'][2]['category_id'] = 42
    coco_tools.write(coco_root, coco, paint=False)
    with pytest.raises(KeyError, match=r'ann\.json.*annotation 102 .*category id 42.*add the '):
        build(coco_root)


def test_bad_image_without_valid_instances(coco_tools, tmp_path):
    coco = coco_tools.scene()
    coco['annotations'][-1]['area'] = 3.0
    coco_tools.write(tmp_path, coco)
    assert img_ids(build(tmp_path)) == [11]
    test_set = build(tmp_path, test_mode=True)
    assert img_ids(test_set) == [11, 12]
    assert test_set.get_data_info(1)['instances'] == []
    results = LoadAnnotations(with_mask=True)(test_set.get_data_info(1))
    assert results['gt_masks'].shape == (0, 80, 60) and results['gt_bboxes'].shape == (0, 4)


def test_bad_duplicate_image_ids(coco_tools, coco_root):
    coco = coco_tools.scene()
    coco['images'][1]['id'] = 11
    coco_tools.write(coco_root, coco, paint=False)
    with pytest.raises(ValueError, match=r"duplicate image id 11 \('a\.jpg' and 'b\.png'\)"):
        build(coco_root)


@pytest.mark.parametrize('drop', ['images', 'annotations', 'categories'])
def test_bad_json_not_coco(coco_tools, coco_root, drop):
    coco = coco_tools.scene()
    del coco[drop]
    coco_tools.write(coco_root, coco, paint=False)
    with pytest.raises(KeyError, match=f"not a COCO instances json: it has no '{drop}' key"):
        build(coco_root, check_image_files=False)


def test_bad_json_not_coco_list_and_test_dev_without_annotations(coco_tools, coco_root):
    (coco_root / 'list.json').write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match='top level is a list'):
        build(coco_root, ann_file='list.json')
    coco = coco_tools.scene()
    del coco['annotations']
    coco_tools.write(coco_root, coco, paint=False)
    assert len(build(coco_root, test_mode=True)) == 2


def test_bad_records(coco_tools, coco_root):
    coco = coco_tools.scene()
    coco['annotations'][0]['segmentation']['size'] = [10, 10]
    coco_tools.write(coco_root, coco, paint=False)
    with pytest.raises(ValueError, match=r'annotation 100 .*RLE of size \[10, 10\]'):
        build(coco_root)
    coco = coco_tools.scene()
    coco['annotations'][0]['image_id'] = 99
    coco_tools.write(coco_root, coco, paint=False)
    with pytest.raises(KeyError, match='annotation 100 refers to image id 99'):
        build(coco_root)
    coco = coco_tools.scene()
    del coco['images'][0]['height']
    coco_tools.write(coco_root, coco, paint=False)
    with pytest.raises(KeyError, match="image #0 'a.jpg' has no 'height'"):
        build(coco_root)


def test_image_size_mismatch_with_json_is_an_error_in_training_and_testing(coco_tools, tmp_path):
    coco = coco_tools.scene()
    coco_tools.write(tmp_path, coco)
    wrong = copy.deepcopy(coco)
    wrong['images'][1]['height'] = 81
    coco_tools.write(tmp_path, wrong, paint=False)
    for test_mode in (False, True):
        info = build(tmp_path, test_mode=test_mode).get_data_info(1)
        with pytest.raises(ValueError, match=r"b\.png' \(image id 12\) is \(80, 60\).*\(81, 60\)"):
            LoadImageFromFile()(info)
    info['img'] = np.zeros((80, 60, 3), np.uint8)
    with pytest.raises(ValueError, match=r"b\.png' \(image id 12\) is \(80, 60\).*\(81, 60\)"):
        LoadAnnotations(with_mask=True)(info)


@pytest.mark.parametrize(
    ('polygon', 'reason'),
    [
        ([10, 10, 50, float('nan'), 50, 40], 'NaN, infinite or not numbers'),
        ([10, 10, 50, 10, float('inf'), 40], 'NaN, infinite or not numbers'),
        ([10, 10, 50, 10, None, 40], 'NaN, infinite or not numbers'),
        ([10, 10, 50, 10, 'x', 40], 'NaN, infinite or not numbers'),
        ([10, 10, 1e9, 10, 50, 40], 'more than an image width or height outside'),
        ([10, 10, 50, 10, 50, -200], 'more than an image width or height outside'),
    ],
)
def test_bad_coordinates_are_dropped_before_rasterising(
    coco_tools, tmp_path, logged, polygon, reason
):
    coco = coco_tools.scene()
    coco['annotations'][1]['segmentation'] = [polygon]  # json.dump writes NaN and Infinity
    coco_tools.write(tmp_path, coco, paint=False)
    (tmp_path / 'images').mkdir()
    for image in coco['images']:
        cv2.imwrite(str(tmp_path / 'images' / image['file_name']), np.zeros((8, 8, 3), np.uint8))
    instances = build(tmp_path).get_data_info(0)['instances']
    assert [i['bbox_label'] for i in instances] == [2, 1, 2]
    assert any(reason in m and 'annotation 101 of image' in m for m in logged), logged


def test_bad_boxes_are_dropped(coco_tools, coco_root, logged):
    coco = coco_tools.scene()
    coco['annotations'][1]['bbox'] = [10, 10, float('nan'), 30]
    coco['annotations'][2]['bbox'] = [77, 47, 37]
    coco_tools.write(coco_root, coco, paint=False)
    instances = build(coco_root).get_data_info(0)['instances']
    assert [i['bbox_label'] for i in instances] == [2, 2]
    assert any('not 4 finite numbers [x, y, w, h]: 2 (e.g. annotation 101' in m for m in logged)


@pytest.mark.parametrize('content', ['', '{"images": [', 'images: []'])
def test_bad_json_syntax_names_the_file(coco_root, content):
    (coco_root / 'annotations' / 'ann.json').write_text(content)
    with pytest.raises(
        ValueError, match=r"annotation file '.*ann\.json' \(\d+ bytes\) is not valid"
    ):
        build(coco_root)


def test_bad_empty_image_file(coco_root):
    (coco_root / 'images' / 'b.png').write_bytes(b'')
    with pytest.raises(
        FileNotFoundError, match=r"are empty \(0 bytes\), e\.g\. '.*b\.png' \(image"
    ):
        build(coco_root)
    info = build(coco_root, check_image_files=False).get_data_info(1)
    with pytest.raises(OSError, match=r"cannot decode image '.*b\.png' \(image id 12, 0 bytes\)"):
        LoadImageFromFile()(info)


def test_training_set_emptied_by_the_filters_names_the_reasons(coco_root):
    with pytest.raises(ValueError, match=r'no image left for training of 2 \(2 images dropped '):
        build(coco_root, filter_cfg=dict(min_size=1000))


def test_serialized_and_plain_data_lists_agree(coco_root):
    serialized = build(coco_root)
    plain = build(coco_root, serialize_data=False)
    assert serialized.get_data_info(1) == plain.get_data_info(1)
    assert serialized.get_cat_ids(0) == [2, 0, 1, 2]

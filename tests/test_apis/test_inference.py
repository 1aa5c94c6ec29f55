"""init_detector / inference_detector: loading, batching, coordinates, RLE masks, bad input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from pycocotools import mask as mask_utils

from polarmask.apis import DetectionResult, inference_detector, init_detector
from polarmask.datasets.shapes_generator import SHAPES_CLASSES
from polarmask.structures.mask import polygon_to_mask
from polarmask.structures.polar import ray_directions
from polarmask.utils.config import config_input_shape, load_config
from tests.test_apis.demo_model import (
    BOX_SIDE,
    CONFIG,
    INPUT_SIZE,
    RAY_LENGTH,
    write_demo_checkpoint,
)


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_init_detector_loads_weights_classes_and_eval_mode(model, checkpoint):
    saved = torch.load(checkpoint, weights_only=True)['state_dict']
    assert not model.training
    assert isinstance(model.cfg, Config)
    assert model.dataset_meta['classes'] == SHAPES_CLASSES
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_init_detector_strips_the_pretrained_backbone(checkpoint):
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint='/nonexistent/r18.pth')
    model = init_detector(cfg, checkpoint)
    assert model.cfg.model.backbone.init_cfg is None
    assert 'Pretrained' not in str(model.backbone.init_cfg)
    assert cfg.model.backbone.init_cfg.checkpoint == '/nonexistent/r18.pth'  # not modified


def test_classes_come_from_the_config_without_checkpoint():
    assert init_detector(CONFIG).dataset_meta['classes'] == SHAPES_CLASSES  # ShapesDataset
    names = ('a', 'b', 'c', 'd', 'e', 'f')
    cfg = Config.fromfile(CONFIG)
    cfg.test_dataloader.dataset.metainfo = dict(classes=names)
    assert init_detector(cfg).dataset_meta['classes'] == names


def test_classes_come_from_the_coco_json_of_the_config(tmp_path):
    names = ['cat', 'dog', 'cow', 'fox', 'owl', 'elk']
    categories = [dict(id=10 + i, name=name) for i, name in enumerate(names)]
    (tmp_path / 'val.json').write_text(json.dumps(dict(images=[], categories=categories)))
    cfg = Config.fromfile(CONFIG)
    cfg.test_dataloader.dataset.update(
        type='CocoInsSegDataset', data_root=str(tmp_path), ann_file='val.json'
    )
    assert init_detector(cfg).dataset_meta['classes'] == tuple(names)


def test_path_array_and_batch_give_the_same_detections(model, tmp_path):
    img, other = random_image(96, 160), random_image(200, 120, seed=1)
    path = tmp_path / 'a.png'
    cv2.imwrite(str(path), img)

    from_path = inference_detector(model, str(path))
    from_array = inference_detector(model, img)
    assert isinstance(from_path, DetectionResult) and len(from_path) > 0
    assert from_path.img_path == str(path) and from_array.img_path is None
    assert from_path.ori_shape == (96, 160)
    np.testing.assert_allclose(from_path.polygons, from_array.polygons)
    np.testing.assert_allclose(from_path.scores, from_array.scores)

    batch = inference_detector(model, [path, other])
    assert isinstance(batch, list) and len(batch) == 2
    assert batch[1].ori_shape == (200, 120)
    for batched, single in ((batch[0], from_path), (batch[1], inference_detector(model, other))):
        np.testing.assert_allclose(batched.scores, single.scores, rtol=1e-5)
        np.testing.assert_allclose(batched.polygons, single.polygons, atol=1e-3)
        np.testing.assert_array_equal(batched.labels, single.labels)
    assert inference_detector(model, []) == []


def test_polygons_and_boxes_are_in_original_image_pixels(model, checkpoint):
    """Rays of RAY_LENGTH input pixels become ellipses stretched by 1 / scale factor.

    Measured on the demo model without its ``round_vertices``, which then rounds them.
    """
    height, width = 128, 384
    image = random_image(height, width)
    exact = init_detector(
        CONFIG, str(checkpoint), cfg_options={'model.test_cfg.round_vertices': False}
    )
    result = inference_detector(exact, image)
    np.testing.assert_array_equal(
        inference_detector(model, image).polygons, np.floor(result.polygons + 0.5)
    )
    scale = np.array([INPUT_SIZE[0] / width, INPUT_SIZE[1] / height])  # (w_scale, h_scale)
    polygons, bboxes = result.polygons, result.bboxes
    assert polygons.shape[1:] == (36, 2)
    # Clamped to the network input ([0, W_in - 1] x [0, H_in - 1]), then rescaled
    # (docs/original_polarmask.md#decoding).
    assert (polygons >= 0).all() and (polygons <= (np.array(INPUT_SIZE) - 1) / scale + 1e-4).all()
    assert polygons[..., 0].max() > INPUT_SIZE[0]  # beyond the network input

    # Polygons away from the border were not clamped: vertex k = centre + ray k / scale.
    inside = (polygons.min(axis=(1, 2)) > 1) & (polygons[..., 0].max(1) < width - 2)
    inside &= polygons[..., 1].max(1) < height - 2
    assert inside.sum() >= 3
    centers = polygons[inside].mean(axis=1, keepdims=True)
    expected = RAY_LENGTH * ray_directions(36).numpy()
    offsets = (polygons[inside] - centers) * scale
    np.testing.assert_allclose(offsets, np.broadcast_to(expected, offsets.shape), atol=1e-3)
    boxes = bboxes[inside]
    np.testing.assert_allclose((boxes[:, 2:] - boxes[:, :2]) * scale, BOX_SIDE, atol=1e-3)
    np.testing.assert_allclose((boxes[:, :2] + boxes[:, 2:]) / 2, centers[:, 0], atol=1e-3)


def test_masks_are_the_rle_of_the_polygons(model):
    height, width = 100, 140
    result = inference_detector(model, random_image(height, width))
    assert len(result.masks) == len(result) > 0
    for rle, polygon in zip(result.masks, result.polygons, strict=True):
        assert rle['size'] == [height, width] and isinstance(rle['counts'], str)
        decoded = mask_utils.decode(rle)
        assert decoded.sum() > 0
        np.testing.assert_array_equal(decoded, polygon_to_mask(polygon, (height, width)))

    record = json.loads(json.dumps(result.to_dict()))
    assert record['class_names'] == [SHAPES_CLASSES[label] for label in record['labels']]
    assert len(record['polygons']) == len(record['masks']) == len(result)


def test_select_keeps_the_detections_above_the_threshold(model):
    result = inference_detector(model, random_image(64, 64))
    threshold = float(np.median(result.scores))
    selected = result.select(threshold)
    assert 0 < len(selected) < len(result)
    assert (selected.scores >= threshold).all()
    keep = result.scores >= threshold
    assert selected.masks == [m for m, k in zip(result.masks, keep, strict=True) if k]
    np.testing.assert_array_equal(selected.polygons, result.polygons[keep])


def test_bad_images_name_the_file_and_the_fix(model, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'.*missing\.jpg' does not exist: check"):
        inference_detector(model, str(tmp_path / 'missing.jpg'))
    (tmp_path / 'notes.jpg').write_text('not an image')
    (tmp_path / 'empty.png').write_bytes(b'')
    for name in ('notes.jpg', 'empty.png'):
        with pytest.raises(ValueError, match=rf"'.*{name}' .* is not an image .* pass a JPEG"):
            inference_detector(model, [random_image(32, 32), str(tmp_path / name)])
    with pytest.raises(ValueError, match=r'image 0 is an array of shape \(8, 8, 4\)'):
        inference_detector(model, np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match='image 1 is an array of float32; pass uint8'):
        inference_detector(model, [random_image(8, 8), np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(TypeError, match='image 0 is a dict'):
        inference_detector(model, [{}])


@pytest.mark.parametrize(
    ('options', 'what', 'fix'),
    [
        (dict(num_classes=3), '3 classes', 'model.bbox_head.num_classes=3'),
        (dict(num_rays=18), '18 rays', 'model.bbox_head.num_rays=18'),
    ],
)
def test_checkpoint_for_another_head_names_the_fix(tmp_path, options, what, fix):
    checkpoint = write_demo_checkpoint(tmp_path / 'other.pth', **options)
    with pytest.raises(ValueError, match=rf"'.*other\.pth' was trained for {what} .*{fix}"):
        init_detector(CONFIG, checkpoint)
    key, value = next(iter(options.items()))
    model = init_detector(CONFIG, checkpoint, cfg_options={f'model.bbox_head.{key}': value})
    result = inference_detector(model, random_image(40, 50))
    assert len(model.dataset_meta['classes']) == model.bbox_head.num_classes
    assert result.polygons.shape[1] == model.bbox_head.num_rays


def test_config_checkpoint_mismatch_lists_the_weights(tmp_path, checkpoint):
    state_dict = torch.load(checkpoint, weights_only=True)['state_dict']
    state_dict['neck.fpn_convs.0.conv.weight'] = torch.zeros(32, 64, 3, 3)
    del state_dict['backbone.layer3.1.conv2.weight']
    state_dict['backbone.layer5.0.conv1.weight'] = torch.zeros(1)
    path = tmp_path / 'r34.pth'
    torch.save({'state_dict': state_dict}, path)
    with pytest.raises(ValueError) as error:
        init_detector(CONFIG, path)
    message = str(error.value)
    for part in (
        "'" + str(path) + "' does not fit the model of config",
        'neck.fpn_convs.0.conv.weight (32, 64, 3, 3) (model: (64, 64, 3, 3))',
        'missing from the checkpoint (e.g. backbone.layer3.1.conv2.weight)',
        'the model does not have (e.g. backbone.layer5.0.conv1.weight)',
        'Use the config the checkpoint was trained with',
    ):
        assert part in message


def test_original_and_unreadable_checkpoints(tmp_path, checkpoint):
    state_dict = torch.load(checkpoint, weights_only=True)['state_dict']
    original = {k.replace('polar_cls', 'fcos_cls'): v for k, v in state_dict.items()}
    torch.save({'state_dict': original}, tmp_path / 'original.pth')
    with pytest.raises(ValueError, match='original PolarMask code.*polarmask_original_to_ours'):
        init_detector(CONFIG, tmp_path / 'original.pth')
    torch.save([1, 2, 3], tmp_path / 'list.pth')
    with pytest.raises(ValueError, match=r"'.*list\.pth' holds no state dict"):
        init_detector(CONFIG, tmp_path / 'list.pth')
    with pytest.raises(FileNotFoundError, match=r"checkpoint '.*nope\.pth' does not exist"):
        init_detector(CONFIG, tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match=r"config '.*nope\.py' does not exist"):
        init_detector(tmp_path / 'nope.py')


def test_load_config_merges_options_and_input_shape_reads_the_test_resize():
    cfg = load_config(CONFIG, {'model.bbox_head.num_rays': 18})
    assert cfg.model.bbox_head.num_rays == 18 and cfg.filename.endswith('.py')
    assert load_config(cfg).model.bbox_head.num_rays == 18
    width, height = cfg.test_dataloader.dataset.pipeline[1].scale
    assert config_input_shape(cfg) == (height, width)
    resize = dict(type='Resize', scale=(640, 480), keep_ratio=True)
    wrapped = Config(
        dict(
            test_dataloader=dict(dataset=dict(type='Wrapper', dataset=dict(pipeline=[resize]))),
        )
    )
    assert config_input_shape(wrapped) == (480, 640)
    wrapped.test_dataloader.dataset.dataset.pipeline = [dict(type='Resize', scale=300)]
    assert config_input_shape(wrapped) == (300, 300)
    wrapped.test_dataloader.dataset.dataset.pipeline = [dict(type='LoadImageFromFile')]
    assert config_input_shape(wrapped) is None
    with pytest.raises(KeyError, match='has no model'):
        load_config(wrapped)

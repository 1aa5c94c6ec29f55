"""The synthetic shapes dataset: determinism, COCO validity, occlusion, atomic writes, loading."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from polarmask.datasets import shapes, shapes_generator
from polarmask.datasets.shapes import ShapesDataset
from polarmask.datasets.shapes_generator import (
    SHAPE_CATEGORIES,
    SHAPES_CLASSES,
    make_shapes_dataset,
    render_image,
)
from polarmask.registry import DATASETS

TOOL = Path(__file__).parents[2] / 'tools' / 'misc' / 'make_shapes_dataset.py'
TINY = dict(num_train=6, num_val=3)


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()
    }


def siblings(root: Path) -> list[str]:
    return sorted(p.name for p in root.parent.iterdir())


def encoding_of(segmentation: list | dict) -> str:
    if isinstance(segmentation, list):
        return 'polygon'
    return 'uncompressed' if isinstance(segmentation['counts'], list) else 'rle'


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('tiny') / 'shapes'
    make_shapes_dataset(root, **TINY)
    return root


@pytest.fixture(scope='module')
def train_coco(tiny_root: Path) -> COCO:
    return COCO(str(tiny_root / 'annotations' / 'instances_train.json'))


def test_same_seed_same_bytes(tiny_root: Path, tmp_path: Path) -> None:
    again = make_shapes_dataset(tmp_path / 'again', **TINY)
    assert again['generated']
    reference = files_of(tiny_root)
    assert len(reference) == 2 + TINY['num_train'] + TINY['num_val']
    assert files_of(tmp_path / 'again') == reference

    other_seed = files_of(Path(make_shapes_dataset(tmp_path / 'seed1', seed=1, **TINY)['root']))
    assert other_seed.keys() == reference.keys()
    assert all(other_seed[name] != reference[name] for name in reference)


def test_images_do_not_depend_on_split_sizes(tiny_root: Path, tmp_path: Path) -> None:
    smaller = make_shapes_dataset(tmp_path / 'smaller', num_train=2, num_val=3)
    assert smaller['num_images'] == dict(train=2, val=3)
    root = Path(smaller['root'])
    for name in ('train/000001.jpg', 'train/000002.jpg', 'val/000003.jpg'):
        assert (root / name).read_bytes() == (tiny_root / name).read_bytes()


def test_coco_json_is_valid(tiny_root: Path, train_coco: COCO) -> None:
    cat_ids = sorted(train_coco.getCatIds())
    assert cat_ids == [1, 2, 3, 5, 8, 13]
    assert [train_coco.cats[i]['name'] for i in cat_ids] == list(SHAPES_CLASSES)
    assert len(train_coco.imgs) == TINY['num_train']
    for image in train_coco.imgs.values():
        img = cv2.imread(str(tiny_root / 'train' / image['file_name']))
        assert img.shape == (image['height'], image['width'], 3)
        assert 192 <= min(img.shape[:2]) and max(img.shape[:2]) <= 320
    anns = train_coco.loadAnns(train_coco.getAnnIds())
    assert len(anns) >= 2 * TINY['num_train']
    assert [ann['id'] for ann in anns] == list(range(1, len(anns) + 1))
    for ann in anns:
        assert ann['iscrowd'] == 0
        mask = train_coco.annToMask(ann)
        assert mask.sum() == ann['area'] >= 50, ann['id']
        x, y, w, h = ann['bbox']
        ys, xs = np.nonzero(mask)
        if encoding_of(ann['segmentation']) == 'polygon':
            assert all(len(p) >= 6 and len(p) % 2 == 0 for p in ann['segmentation'])
            assert (
                x <= xs.min() and xs.max() <= x + w - 1 and y <= ys.min() <= ys.max() <= y + h - 1
            )
        else:
            assert [x, y, w, h] == [xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1]


def test_all_three_encodings(tiny_root: Path) -> None:
    encodings = {}
    for split in ('train', 'val'):
        coco = COCO(str(tiny_root / 'annotations' / f'instances_{split}.json'))
        for ann in coco.loadAnns(coco.getAnnIds()):
            encodings.setdefault(encoding_of(ann['segmentation']), []).append((split, ann['id']))
    assert set(encodings) == {'polygon', 'rle', 'uncompressed'}
    assert encodings['uncompressed'] == [('train', 4), ('val', 4)]
    assert all(ann_id % 4 == 0 for _, ann_id in encodings['rle'])
    assert len(encodings['polygon']) > 2 * len(encodings['rle'])


def test_instances_annotate_visible_pixels(tiny_root: Path, train_coco: COCO) -> None:
    for image_id, image in train_coco.imgs.items():
        anns = train_coco.loadAnns(train_coco.getAnnIds(imgIds=image_id))
        masks = np.stack([train_coco.annToMask(ann) for ann in anns])
        assert masks.sum(axis=0).max() == 1, image['file_name']
        img = cv2.imread(str(tiny_root / 'train' / image['file_name'])).astype(np.float32)
        background = img[masks.sum(axis=0) == 0].mean(axis=0)
        for ann, mask in zip(anns, masks, strict=True):
            inside = cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
            # each shape's pixels (solid or gentle gradient) differ from the mean background
            assert np.linalg.norm(img[inside].mean(axis=0) - background) > 10, ann['id']


def test_render_image_crowded_scenes() -> None:
    """Large shapes, six per image: occlusion keeps every shape mostly visible and polar-shaped."""
    rng = np.random.default_rng(7)
    category_ids = {cat['id'] for cat in SHAPE_CATEGORIES}
    ious = []
    for _ in range(30):
        img, instances = render_image(rng, 128, 128, object_size=(0.3, 0.6), num_objects=(6, 6))
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        masks = np.stack([mask for _, mask in instances]).astype(np.uint8)
        assert masks.sum(axis=0).max() == 1
        assert {category_id for category_id, _ in instances} <= category_ids
        assert all(mask.sum() >= 100 for mask in masks)
        ious += [polar_iou(mask) for mask in masks]
    assert len(ious) > 100
    assert np.mean(ious) > 0.87 and np.min(ious) > 0.5


def test_occlusion_rules() -> None:
    square = np.zeros((60, 60), bool)
    square[10:50, 10:50] = True
    shape = dict(mask=square, area=1600.0)
    cover = np.zeros_like(square)
    assert shapes_generator._stays_visible(shape, cover, 0.6, 100)
    cover[:, :20] = True  # hides a quarter
    assert shapes_generator._stays_visible(shape, cover, 0.6, 100)
    assert not shapes_generator._stays_visible(shape, cover, 0.8, 100)
    assert not shapes_generator._stays_visible(shape, cover, 0.6, 1201)
    cover[:] = False
    cover[25:35, 25:35] = True  # inside: would leave a hole
    assert not shapes_generator._stays_visible(shape, cover, 0.6, 100)


def polar_iou(mask: np.ndarray, num_rays: int = 36) -> float:
    """IoU of a mask and its polygon of ``num_rays`` farthest-contour rays from the centroid."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
    moments = cv2.moments(contour.astype(np.float32))
    center = np.array([moments['m10'], moments['m01']]) / moments['m00']
    offsets = contour - center
    angles = np.degrees(np.arctan2(offsets[:, 0], offsets[:, 1])) % 360
    distances = np.hypot(offsets[:, 0], offsets[:, 1])
    step = 360 / num_rays
    bins = np.rint(angles / step).astype(int) % num_rays
    rays = np.zeros(num_rays)
    np.maximum.at(rays, bins, distances)
    theta = np.radians(np.arange(num_rays) * step)
    polygon = center + rays[:, None] * np.stack((np.sin(theta), np.cos(theta)), axis=-1)
    canvas = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(canvas, [np.rint(polygon).astype(np.int32)], 1)
    rles = [mask_utils.encode(np.asfortranarray(m)) for m in (canvas, mask)]
    return float(mask_utils.iou(rles[:1], rles[1:], [0])[0, 0])


def test_shapes_fit_36_rays(train_coco: COCO) -> None:
    ious = [polar_iou(train_coco.annToMask(a)) for a in train_coco.loadAnns(train_coco.getAnnIds())]
    assert np.mean(ious) > 0.88
    assert np.min(ious) > 0.5


def test_existing_dataset_is_kept_and_force_regenerates(tmp_path: Path) -> None:
    root = tmp_path / 'shapes'
    assert make_shapes_dataset(root, num_train=2, num_val=1)['generated']
    ann_file = root / 'annotations' / 'instances_train.json'
    inode = ann_file.stat().st_ino
    (root / 'marker').write_text('kept')

    kept = make_shapes_dataset(root, num_train=3, num_val=1)
    assert not kept['generated'] and kept['num_images'] == dict(train=2, val=1)
    assert ann_file.stat().st_ino == inode and (root / 'marker').exists()

    forced = make_shapes_dataset(root, num_train=3, num_val=1, force=True)
    assert forced['generated'] and forced['num_images'] == dict(train=3, val=1)
    assert not (root / 'marker').exists()
    assert siblings(root) == ['shapes']


def test_cli_keeps_then_force_regenerates(tmp_path: Path, monkeypatch, capsys) -> None:
    root = tmp_path / 'cli'
    args = ['--out', str(root), '--num-train', '3', '--num-val', '2', '--seed', '5']
    for extra, expected in (([], 'generated'), ([], 'kept'), (['--force'], 'generated')):
        monkeypatch.setattr(sys, 'argv', [str(TOOL), *args, *extra])
        runpy.run_path(str(TOOL), run_name='__main__')
        out = capsys.readouterr().out
        assert out.splitlines()[0].startswith(f'{root}: {expected}')
        assert 'train: 3 images' in out and 'val: 2 images' in out
        assert 'star (id 8): ' in out and 'cross (id 13): ' in out
    assert siblings(root) == ['cli']


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    write_split = shapes_generator._write_split

    def fail_on_val(root, split, *args):
        if split == 'val':
            raise KeyboardInterrupt
        write_split(root, split, *args)

    monkeypatch.setattr(shapes_generator, '_write_split', fail_on_val)
    with pytest.raises(KeyboardInterrupt):
        make_shapes_dataset(tmp_path / 'shapes', num_train=2, num_val=1)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_caller_keeps_the_winner(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / 'shapes'
    write_split = shapes_generator._write_split

    def another_caller_finishes_first(tmp_root, split, *args):
        if split == 'val':
            monkeypatch.setattr(shapes_generator, '_write_split', write_split)
            assert make_shapes_dataset(root, num_train=2, num_val=1)['generated']
        write_split(tmp_root, split, *args)

    monkeypatch.setattr(shapes_generator, '_write_split', another_caller_finishes_first)
    summary = make_shapes_dataset(root, num_train=2, num_val=1)
    assert summary['generated'] and summary['num_images'] == dict(train=2, val=1)
    assert siblings(root) == ['shapes']
    assert len(files_of(root)) == 2 + 2 + 1


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / 'notes.txt').write_text('mine')
    for force in (False, True):
        with pytest.raises(FileExistsError, match='not a shapes dataset'):
            make_shapes_dataset(tmp_path, num_train=1, num_val=1, force=force)
    assert [p.name for p in tmp_path.iterdir()] == ['notes.txt']


def dataset_cfg(root: Path, split: str, **kwargs) -> dict:
    return dict(
        type='ShapesDataset',
        data_root=str(root),
        ann_file=f'annotations/instances_{split}.json',
        data_prefix=dict(img=f'{split}/'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        ],
        **kwargs,
    )


def test_shapes_dataset_generates_on_first_use(tmp_path: Path) -> None:
    root = tmp_path / 'data' / 'shapes'
    generator_cfg = dict(num_train=4, num_val=2, seed=3)
    train = DATASETS.build(dataset_cfg(root, 'train', generator_cfg=generator_cfg))
    assert isinstance(train, ShapesDataset)
    assert (root / 'annotations' / 'instances_val.json').is_file()
    assert train.metainfo['classes'] == SHAPES_CLASSES
    assert train.metainfo['cat_ids'] == (1, 2, 3, 5, 8, 13)
    coco = COCO(str(root / 'annotations' / 'instances_train.json'))
    assert len(train) == len(coco.getImgIds()) == 4
    for index in range(len(train)):
        results = train[index]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=results['img_id']))
        masks = results['gt_masks']
        assert masks.shape == (len(anns), *results['img'].shape[:2])
        assert masks.sum(axis=0).max() == 1
        assert [int(m.sum()) for m in masks] == [ann['area'] for ann in anns]
        labels = [train.metainfo['cat_ids'][label] for label in results['gt_bboxes_labels']]
        assert labels == [ann['category_id'] for ann in anns]

    inode = (root / 'annotations' / 'instances_val.json').stat().st_ino
    val = DATASETS.build(dataset_cfg(root, 'val', test_mode=True, generator_cfg=generator_cfg))
    assert len(val) == 2
    assert (root / 'annotations' / 'instances_val.json').stat().st_ino == inode


def test_shapes_dataset_warns_about_data_made_with_other_settings(
    tmp_path: Path, monkeypatch
) -> None:
    root = tmp_path / 'shapes'
    make_shapes_dataset(root, num_train=2, num_val=1, image_size=(48, 64))
    messages = []
    monkeypatch.setattr(shapes, 'print_log', lambda msg, **kwargs: messages.append(msg))
    DATASETS.build(dataset_cfg(root, 'train', generator_cfg=dict(image_size=(48, 64))))
    assert messages == []
    DATASETS.build(dataset_cfg(root, 'train', generator_cfg=dict(image_size=(160, 160))))
    assert len(messages) == 1
    assert 'image_size=[48, 64] (asked for [160, 160])' in messages[0]
    assert f"delete '{root}" in messages[0]


def test_shapes_dataset_without_generation(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        DATASETS.build(dataset_cfg(tmp_path / 'missing', 'train', generate_if_missing=False))
    assert not (tmp_path / 'missing').exists()
    with pytest.raises(FileNotFoundError, match='instances_test.json'):
        DATASETS.build(dataset_cfg(tmp_path / 'other', 'test', generator_cfg=TINY))


@pytest.mark.parametrize(
    ('rank', 'shared_fs', 'generated_by'),
    [(0, True, ['before barrier']), (1, True, ['rank 0']), (1, False, ['after barrier'])],
)
def test_shapes_dataset_distributed(tmp_path: Path, monkeypatch, rank, shared_fs, generated_by):
    """Rank 0 generates before the barrier; other ranks wait, and generate after it only when
    rank 0's files are not visible to them (a node without a shared file system)."""
    root = tmp_path / 'shapes'
    events = []
    make = shapes.make_shapes_dataset

    def logged_make(*args, **kwargs):
        events.append('after barrier' if 'barrier' in events else 'before barrier')
        return make(*args, **kwargs)

    def barrier():
        events.append('barrier')
        if rank != 0 and shared_fs:
            make(root, num_train=2, num_val=1)
            events.append('rank 0')

    monkeypatch.setattr(shapes, 'get_dist_info', lambda: (rank, 2))
    monkeypatch.setattr(shapes, 'barrier', barrier)
    monkeypatch.setattr(shapes, 'make_shapes_dataset', logged_make)
    dataset = DATASETS.build(dataset_cfg(root, 'train', generator_cfg=dict(num_train=2, num_val=1)))
    assert len(dataset) == 2
    assert events.count('barrier') == 1
    assert [e for e in events if e != 'barrier'] == generated_by

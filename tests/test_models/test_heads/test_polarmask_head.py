"""PolarMaskHead: losses on tiny inputs, decoding and post-processing on hand-made maps."""

import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from torch import nn

from polarmask.models.heads import PolarMaskHead
from polarmask.models.layers import ModulatedDeformConv2dPack
from polarmask.structures import DetDataSample
from polarmask.structures.mask import polygons_to_masks
from polarmask.structures.polar import mask_contour, rays_to_polygons

IMG = 128
STRIDES = (8, 16, 32, 64, 128)
TEST_CFG = dict(
    nms_pre=1000,
    score_thr=0.05,
    nms=dict(type='nms', iou_threshold=0.5, offset=1),
    max_per_img=100,
    mask_nms=False,
)


def _head(num_rays=36, num_classes=3, use_dcn=False, bbox_branch=True, **test_cfg) -> PolarMaskHead:
    head = PolarMaskHead(
        bbox_branch=bbox_branch,
        num_classes=num_classes,
        in_channels=8,
        stacked_convs=2,
        feat_channels=8,
        num_rays=num_rays,
        norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
        use_dcn=use_dcn,
        test_cfg={**TEST_CFG, **test_cfg},
    )
    head.init_weights()
    return head


def _features(num_imgs=2):
    torch.manual_seed(0)
    return tuple(torch.randn(num_imgs, 8, IMG // s, IMG // s) for s in STRIDES)


def _sample(boxes=(), labels=()) -> DetDataSample:
    """A data sample whose instances are the given filled rectangles (x1, y1, x2, y2)."""
    sample = DetDataSample(
        metainfo=dict(img_shape=(IMG, IMG), pad_shape=(IMG, IMG), scale_factor=(1.0, 1.0))
    )
    contours, centers = [], []
    for x1, y1, x2, y2 in boxes:
        mask = np.zeros((IMG, IMG), np.uint8)
        mask[y1 : y2 + 1, x1 : x2 + 1] = 1
        contour, center = mask_contour(mask)
        contours.append(torch.from_numpy(contour))
        centers.append(torch.from_numpy(center))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long),
        contours=contours,
        centers=torch.stack(centers) if centers else torch.zeros(0, 2),
    )
    return sample


def test_forward_shapes_and_parameter_names():
    head = _head(num_rays=24)
    cls_scores, bbox_preds, centernesses, ray_preds = head(_features())
    assert [tuple(s.shape) for s in cls_scores][:2] == [(2, 3, 16, 16), (2, 3, 8, 8)]
    assert bbox_preds[4].shape == (2, 4, 1, 1)
    assert centernesses[1].shape == (2, 1, 8, 8)
    assert ray_preds[0].shape == (2, 24, 16, 16)
    assert all((p > 0).all() for p in bbox_preds + ray_preds)
    names = set(head.state_dict())
    assert {
        'cls_convs.1.conv.weight',
        'mask_convs.0.gn.bias',
        'polar_mask.bias',
        'polar_centerness.weight',
        'scales_mask.4.scale',
        'scales_bbox.0.scale',
    } <= names
    assert 'cls_convs.0.conv.bias' not in names


def test_init_matches_original():
    head = _head()
    assert head.polar_cls.bias.tolist() == pytest.approx([-math.log(99)] * 3, rel=1e-6)
    assert torch.count_nonzero(head.polar_mask.bias) == 0
    assert 0.005 < head.reg_convs[0].conv.weight.std() < 0.02
    assert torch.all(head.cls_convs[0].gn.weight == 1)
    assert head.scales_mask[2].scale.item() == 1.0


def test_dcn_towers_have_the_original_layout_names_and_init():
    head = _head(use_dcn=True)
    for tower in (head.cls_convs, head.reg_convs, head.mask_convs):
        assert [type(layer) for layer in tower] == [
            ModulatedDeformConv2dPack,
            nn.GroupNorm,
            nn.ReLU,
        ] * 2
    names = set(head.state_dict())
    assert {
        'cls_convs.0.weight',
        'cls_convs.0.bias',
        'cls_convs.0.conv_offset_mask.weight',
        'cls_convs.0.conv_offset_mask.bias',
        'cls_convs.1.weight',
        'cls_convs.1.bias',
        'reg_convs.3.conv_offset_mask.bias',
        'mask_convs.4.bias',
    } <= names
    assert not any('.conv.' in name or '.gn.' in name for name in names)
    # The towers keep the op's init (the original skips its normal(0.01) under DCN).
    bound = 1 / math.sqrt(8 * 9)
    for conv in (head.cls_convs[0], head.mask_convs[3]):
        assert 0.9 * bound < conv.weight.abs().max() <= bound
        assert conv.weight.std() > 0.03
        assert torch.count_nonzero(conv.bias) == 0
        assert torch.count_nonzero(conv.conv_offset_mask.weight) == 0
        assert torch.count_nonzero(conv.conv_offset_mask.bias) == 0
    assert torch.all(head.reg_convs[1].weight == 1) and torch.all(head.reg_convs[1].bias == 0)
    assert head.polar_cls.bias.tolist() == pytest.approx([-math.log(99)] * 3, rel=1e-6)
    assert 0.005 < head.polar_mask.weight.std() < 0.02
    assert torch.count_nonzero(head.polar_centerness.bias) == 0


def test_dcn_head_losses_reach_the_offset_convs():
    head = _head(use_dcn=True)
    losses = head.loss(_features(), [_sample([(40, 30, 89, 69)], [1]), _sample()])
    assert all(torch.isfinite(value) and value > 0 for value in losses.values())
    sum(losses.values()).backward()
    for tower in (head.cls_convs, head.reg_convs, head.mask_convs):
        grad = tower[3].conv_offset_mask.weight.grad
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_empty_ground_truth_gives_only_classification_loss():
    head = _head()
    losses = head.loss(_features(), [_sample(), _sample()])
    assert losses['loss_cls'] > 0
    for name in ('loss_bbox', 'loss_mask', 'loss_centerness'):
        assert losses[name].item() == 0
        assert losses[name].requires_grad
    sum(losses.values()).backward()
    assert head.polar_cls.weight.grad.abs().sum() > 0
    assert head.polar_mask.weight.grad is not None


@pytest.mark.parametrize('num_rays', [36, 18, 24, 72])
def test_one_instance_gives_positive_finite_losses(num_rays):
    head = _head(num_rays=num_rays)
    samples = [_sample([(40, 30, 89, 69)], [1]), _sample()]
    losses = head.loss(_features(), samples)
    for name, value in losses.items():
        assert torch.isfinite(value), name
        assert value > 0, name
    sum(losses.values()).backward()
    assert head.polar_mask.weight.grad.abs().sum() > 0
    assert head.scales_bbox[0].scale.grad is not None


def test_loss_normalisation_matches_reference_formulas():
    head = _head()
    samples = [_sample([(40, 30, 89, 69)], [2]), _sample()]
    features = _features()
    outs = head(features)
    losses = head.loss_by_feat(
        *outs, [s.gt_instances for s in samples], [s.metainfo for s in samples]
    )
    labels, _, rays = head.target_generator.get_targets(
        [s.shape[-2:] for s in outs[0]], [s.gt_instances for s in samples], 3
    )
    num_pos = int((labels < 3).sum())
    assert num_pos > 0
    flat_cls = torch.cat([s.permute(0, 2, 3, 1).reshape(2, -1, 3) for s in outs[0]], 1)
    one_hot = torch.nn.functional.one_hot(labels, 4)[..., :3].float()
    prob = flat_cls.sigmoid()
    pt = torch.where(one_hot > 0, prob, 1 - prob)
    alpha = torch.where(one_hot > 0, 0.25, 0.75)
    focal = -(alpha * (1 - pt) ** 2 * pt.log()).sum() / (num_pos + 2)
    torch.testing.assert_close(losses['loss_cls'], focal, rtol=1e-4, atol=1e-6)

    pos = labels < 3
    pos_rays = rays[pos]
    weights = (pos_rays.min(-1).values / pos_rays.max(-1).values).sqrt()
    flat_rays = torch.cat([r.permute(0, 2, 3, 1).reshape(2, -1, 36) for r in outs[3]], 1)[pos]
    per_point = (flat_rays.max(pos_rays).sum(-1) / flat_rays.min(pos_rays).sum(-1)).log()
    expected_mask = (per_point * weights).sum() / weights.sum()
    torch.testing.assert_close(losses['loss_mask'], expected_mask, rtol=1e-5, atol=1e-6)


# --- decoding -----------------------------------------------------------------------------------


def _maps(num_rays=36, num_classes=3, num_imgs=1):
    """Head outputs with no detection anywhere: cls logits -20, centerness 0, lengths 1."""
    sizes = [(IMG // s, IMG // s) for s in STRIDES]
    cls_scores = [torch.full((num_imgs, num_classes, h, w), -20.0) for h, w in sizes]
    bbox_preds = [torch.ones(num_imgs, 4, h, w) for h, w in sizes]
    centernesses = [torch.zeros(num_imgs, 1, h, w) for h, w in sizes]
    ray_preds = [torch.ones(num_imgs, num_rays, h, w) for h, w in sizes]
    return cls_scores, bbox_preds, centernesses, ray_preds


def _put(maps, row, col, label, logit=10.0, ltrb=(10, 20, 30, 40), rays=None, ctr=0.0, img=0):
    """Set the level-0 (stride 8) cell (row, col): point (col * 8 + 4, row * 8 + 4)."""
    cls_scores, bbox_preds, centernesses, ray_preds = maps
    cls_scores[0][img, label, row, col] = logit
    bbox_preds[0][img, :, row, col] = torch.tensor(ltrb, dtype=torch.float32)
    centernesses[0][img, 0, row, col] = ctr
    if rays is not None:
        ray_preds[0][img, :, row, col] = torch.as_tensor(rays, dtype=torch.float32)


def _meta(scale_factor=(1.0, 1.0)):
    return dict(img_shape=(IMG, IMG), pad_shape=(IMG, IMG), scale_factor=scale_factor)


def test_rays_decode_to_polygon_vertices_and_box():
    head = _head()
    maps = _maps()
    rays = 10 + 5 * torch.sin(torch.arange(36) * 0.7).double()
    _put(maps, row=5, col=6, label=2, rays=rays)
    (result,) = head.predict_by_feat(*maps, batch_img_metas=[_meta()])
    assert result.labels.tolist() == [2]
    assert result.scores.item() == pytest.approx(torch.sigmoid(torch.tensor(10.0)).item())
    cx, cy = 6 * 8 + 4, 5 * 8 + 4
    expected = torch.tensor(
        [
            [cx + r * math.sin(math.radians(10 * k)), cy + r * math.cos(math.radians(10 * k))]
            for k, r in enumerate(rays.tolist())
        ]
    )
    torch.testing.assert_close(result.polygons[0].double(), expected.double(), atol=1e-4, rtol=0)
    assert result.bboxes[0].tolist() == [cx - 10, cy - 20, cx + 30, cy + 40]


def test_rasterised_diamond_has_the_lattice_area():
    head = _head(num_rays=4)
    maps = _maps(num_rays=4)
    _put(maps, row=5, col=6, label=0, rays=[20.0] * 4)
    (result,) = head.predict_by_feat(*maps, batch_img_metas=[_meta()])
    polygon = result.polygons[0]
    assert polygon.round().tolist() == [[52, 64], [72, 44], [52, 24], [32, 44]]
    mask = polygons_to_masks(result.polygons, (IMG, IMG))[0]
    # area 2 * 20**2 = 800 plus the 80 boundary lattice points / 2 + 1 (Pick): filled pixels
    assert mask.sum() == 841


def test_round_vertices_rounds_the_returned_polygons_in_the_output_frame():
    maps = _maps()
    _put(maps, row=5, col=6, label=0, rays=10 + 5 * torch.sin(torch.arange(36) * 0.7))
    _put(maps, row=9, col=3, label=1, rays=torch.full((36,), 20.6))
    meta = _meta(scale_factor=(1.25, 0.8))
    (plain,) = _head().predict_by_feat(*maps, batch_img_metas=[meta], rescale=True)
    (rounded,) = _head(round_vertices=True).predict_by_feat(
        *maps, batch_img_metas=[meta], rescale=True
    )
    assert not torch.equal(plain.polygons, plain.polygons.round())
    torch.testing.assert_close(rounded.polygons, torch.floor(plain.polygons + 0.5), rtol=0, atol=0)
    for key in ('bboxes', 'scores', 'labels'):
        assert torch.equal(rounded.get(key), plain.get(key))


def test_rounded_vertices_rasterise_centred_where_truncation_shifts_up_left():
    maps = _maps(num_rays=4)
    _put(maps, row=5, col=6, label=0, rays=[20.6] * 4)  # a diamond centred on (52, 44)
    centroids = {}
    for round_vertices in (False, True):
        head = _head(num_rays=4, round_vertices=round_vertices)
        (result,) = head.predict_by_feat(*maps, batch_img_metas=[_meta()])
        ys, xs = polygons_to_masks(result.polygons, (IMG, IMG))[0].nonzero()
        centroids[round_vertices] = (xs.mean(), ys.mean())
    assert centroids[True] == pytest.approx((52, 44))
    # Truncated vertices (31, 44), (52, 23), (72, 44), (52, 64): 3/8 px up and left.
    assert centroids[False] == pytest.approx((52 - 0.375, 44 - 0.375), abs=0.01)


def test_rescale_is_per_axis_and_clamps_to_the_image():
    head = _head()
    maps = _maps()
    _put(maps, row=1, col=14, label=1, rays=torch.full((36,), 50.0), ltrb=(10, 20, 40, 5))
    meta = _meta(scale_factor=(2.0, 0.5))
    (plain,) = head.predict_by_feat(*maps, batch_img_metas=[meta], rescale=False)
    (scaled,) = head.predict_by_feat(*maps, batch_img_metas=[meta], rescale=True)
    assert plain.bboxes[0].tolist() == [106, 0, 127, 17]
    assert plain.polygons[..., 0].max() == IMG - 1 and plain.polygons[..., 1].min() == 0
    torch.testing.assert_close(scaled.bboxes, plain.bboxes / torch.tensor([2.0, 0.5, 2.0, 0.5]))
    torch.testing.assert_close(scaled.polygons, plain.polygons / torch.tensor([2.0, 0.5]))


def test_threshold_on_raw_score_then_centerness_factor():
    head = _head()
    maps = _maps()
    _put(maps, 2, 2, label=0, logit=math.log(0.06 / 0.94), ctr=-2.0)
    _put(maps, 8, 8, label=0, logit=math.log(0.04 / 0.96), ctr=20.0)
    (result,) = head.predict_by_feat(*maps, batch_img_metas=[_meta()])
    assert len(result) == 1
    expected = 0.06 * (torch.sigmoid(torch.tensor(-2.0)).item() + 0.5)
    assert result.scores.item() == pytest.approx(expected, rel=1e-5)


def test_class_wise_nms_and_mask_nms():
    small_rays = torch.full((36,), 2.0)
    maps = _maps()
    _put(maps, 5, 6, label=1, logit=5.0, rays=small_rays)
    _put(maps, 5, 7, label=1, logit=4.0, rays=small_rays)  # box IoU 0.6, polygons disjoint
    _put(maps, 5, 8, label=2, logit=3.0, rays=small_rays, ltrb=(26, 20, 14, 40))
    (boxes_nms,) = _head().predict_by_feat(*maps, batch_img_metas=[_meta()])
    assert boxes_nms.labels.tolist() == [1, 2]
    assert boxes_nms.scores[0] > boxes_nms.scores[1]
    (polygon_nms,) = _head(mask_nms=True).predict_by_feat(*maps, batch_img_metas=[_meta()])
    assert polygon_nms.labels.tolist() == [1, 1, 2]
    # The original returns the box that went through NMS: the polygon's tight box.
    polygons = polygon_nms.polygons
    tight = torch.cat((polygons.amin(dim=1), polygons.amax(dim=1)), dim=1)
    assert torch.equal(polygon_nms.bboxes, tight)
    assert not torch.equal(polygon_nms.bboxes[2], boxes_nms.bboxes[1])
    (top1,) = _head(max_per_img=1).predict_by_feat(*maps, batch_img_metas=[_meta()])
    assert top1.labels.tolist() == [1] and top1.scores.item() == boxes_nms.scores[0].item()


def test_class_agnostic_nms_keeps_one_shape_scored_for_two_classes():
    maps = _maps()
    _put(maps, 5, 6, label=1, logit=5.0)
    _put(maps, 5, 7, label=2, logit=4.0)  # the same box one stride to the right: IoU 0.67
    (class_wise,) = _head().predict_by_feat(*maps, batch_img_metas=[_meta()])
    assert class_wise.labels.tolist() == [1, 2]
    agnostic_cfg = dict(TEST_CFG, nms=dict(type='nms', iou_threshold=0.5, class_agnostic=True))
    (agnostic,) = _head().predict_by_feat(*maps, batch_img_metas=[_meta()], cfg=agnostic_cfg)
    assert agnostic.labels.tolist() == [1]


def test_without_box_branch_boxes_are_the_polygons_tight_boxes():
    head = _head(bbox_branch=False)
    names = {name.split('.')[0] for name, _ in head.named_parameters()}
    assert not names & {'reg_convs', 'polar_reg', 'scales_bbox'}
    assert head.loss_bbox is None
    cls_scores, bbox_preds, centernesses, ray_preds = head(_features(num_imgs=1))
    points = torch.cat(head.prior_points([m.shape[-2:] for m in cls_scores], torch.float32, 'cpu'))
    flat_rays = torch.cat([r[0].flatten(1).T for r in ray_preds])  # (P, R)
    flat_boxes = torch.cat([b[0].flatten(1).T for b in bbox_preds])  # (P, 4) l, t, r, b
    polygons = rays_to_polygons(points, flat_rays)
    expected = torch.cat((points - polygons.amin(dim=1), polygons.amax(dim=1) - points), dim=1)
    torch.testing.assert_close(flat_boxes, expected, atol=1e-3, rtol=1e-5)

    losses = head.loss(_features(), [_sample([(40, 30, 89, 69)], [1]), _sample()])
    assert set(losses) == {'loss_cls', 'loss_mask', 'loss_centerness'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    empty = head.loss(_features(), [_sample(), _sample()])
    assert set(empty) == {'loss_cls', 'loss_mask', 'loss_centerness'}

    (result,) = _head(bbox_branch=False, score_thr=0.0, max_per_img=20).predict(
        _features(num_imgs=1), [_sample()]
    )
    assert len(result) == 20
    tight = torch.cat((result.polygons.amin(dim=1), result.polygons.amax(dim=1)), dim=1)
    torch.testing.assert_close(result.bboxes, tight, atol=1e-4, rtol=0)


def test_nms_pre_keeps_the_top_cls_times_centerness_per_level():
    maps = _maps()
    _put(maps, 1, 1, label=0, logit=2.0, ctr=-5.0, ltrb=(2, 2, 2, 2))
    _put(maps, 9, 9, label=0, logit=1.0, ctr=5.0, ltrb=(2, 2, 2, 2))
    (result,) = _head(nms_pre=1).predict_by_feat(*maps, batch_img_metas=[_meta()])
    assert len(result) == 1
    assert result.bboxes[0, 0].item() == 9 * 8 + 4 - 2


def test_batch_prediction_is_per_image():
    head = _head()
    maps = _maps(num_imgs=2)
    _put(maps, 5, 6, label=2, img=1)
    results = head.predict_by_feat(*maps, batch_img_metas=[_meta(), _meta()])
    assert len(results[0]) == 0
    assert results[0].polygons.shape == (0, 36, 2)
    assert results[0].bboxes.shape == (0, 4)
    assert results[1].labels.tolist() == [2]


def test_predict_end_to_end_for_any_ray_count():
    for num_rays in (18, 72):
        head = _head(num_rays=num_rays)
        head.polar_cls.bias.data.zero_()
        results = head.predict(_features(), [_sample(), _sample()], rescale=True)
        assert len(results) == 2
        assert 0 < len(results[0]) <= 100
        assert results[0].polygons.shape[1:] == (num_rays, 2)


def test_bad_configuration_is_reported():
    with pytest.raises(ValueError, match='num_rays'):
        _head(num_rays=7)
    with pytest.raises(ValueError, match='angle convention'):
        PolarMaskHead(num_classes=3, in_channels=8, angle_convention='paper')
    with pytest.raises(ValueError, match='regress range'):
        PolarMaskHead(num_classes=3, in_channels=8, strides=(8, 16))
    with pytest.raises(ValueError, match='set conv_cfg=None'):
        PolarMaskHead(num_classes=3, in_channels=8, use_dcn=True, conv_cfg=dict(type='Conv2d'))

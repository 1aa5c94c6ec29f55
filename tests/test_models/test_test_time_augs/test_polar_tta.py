"""PolarTTAModel: flipped views map back onto the image, vertex k on ray k, and merge by NMS."""

import pytest
import torch
from mmengine.structures import InstanceData

from polarmask.models.test_time_augs import PolarTTAModel, unflip_instances
from polarmask.models.test_time_augs.polar_tta import flipped_ray_order
from polarmask.structures import DetDataSample
from polarmask.structures.polar import polygons_to_bboxes, rays_to_polygons
from polarmask.utils import register_all_modules
from tests.tiny_model import tiny_model_cfg

register_all_modules()

ORI_SHAPE = (60, 100)  # (H, W) of the original image
SCALE = (2.0, 1.5)  # (w_scale, h_scale) of the view
IMG_SHAPE = (90, 200)


def _polygons() -> torch.Tensor:
    """Two lopsided polygons (2, 36, 2) in original-image pixels."""
    rays = torch.stack((torch.linspace(5, 20, 36), torch.linspace(12, 3, 36) ** 1.2))
    centers = torch.tensor([[30.0, 25.0], [70.5, 40.0]])
    return rays_to_polygons(centers, rays)


def _flipped_view(polygons: torch.Tensor, direction: str) -> InstanceData:
    """What a view resized by SCALE then flipped predicts, divided back by SCALE.

    The current convention puts ray k at 10k degrees from +y toward +x, so a horizontal flip
    turns ray k into ray -k, a vertical one into ray 18 - k and a diagonal one into ray k + 18.
    """
    resized = polygons * torch.tensor(SCALE)
    height, width = IMG_SHAPE
    k = torch.arange(36)
    if direction == 'horizontal':
        resized[..., 0] = width - 1 - resized[..., 0]
        order = -k % 36
    elif direction == 'vertical':
        resized[..., 1] = height - 1 - resized[..., 1]
        order = (18 - k) % 36
    else:
        resized[..., 0] = width - 1 - resized[..., 0]
        resized[..., 1] = height - 1 - resized[..., 1]
        order = (k + 18) % 36
    flipped = resized[:, order] / torch.tensor(SCALE)
    return InstanceData(
        bboxes=polygons_to_bboxes(flipped),
        polygons=flipped,
        scores=torch.tensor([0.9, 0.6]),
        labels=torch.tensor([0, 2]),
    )


def _meta(flip: bool, direction: str | None = None) -> dict:
    return dict(
        img_id=7,
        ori_shape=ORI_SHAPE,
        img_shape=IMG_SHAPE,
        scale_factor=SCALE,
        flip=flip,
        flip_direction=direction,
    )


@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_unflip_restores_polygons_vertex_by_vertex(direction):
    polygons = _polygons()
    restored = unflip_instances(_flipped_view(polygons, direction), _meta(True, direction))
    torch.testing.assert_close(restored.polygons, polygons, atol=1e-4, rtol=0)
    torch.testing.assert_close(restored.bboxes, polygons_to_bboxes(polygons), atol=1e-4, rtol=0)
    assert restored.labels.tolist() == [0, 2]


def test_unflip_leaves_an_unflipped_view_alone():
    view = _flipped_view(_polygons(), 'horizontal')
    assert unflip_instances(view, _meta(False)) is view


def test_flipped_ray_order_is_an_involution_for_both_conventions():
    for convention in ('current', 'legacy'):
        for direction in ('horizontal', 'vertical', 'diagonal'):
            order = flipped_ray_order(36, direction, convention)
            assert sorted(order.tolist()) == list(range(36))
            assert order[order].tolist() == list(range(36))


def test_vertical_flip_of_an_odd_number_of_rays_is_refused():
    with pytest.raises(ValueError, match='even'):
        flipped_ray_order(45, 'vertical')


def test_merge_keeps_one_detection_per_object_across_views():
    tta = PolarTTAModel(module=tiny_model_cfg(), tta_cfg=dict(max_per_img=10))
    polygons = _polygons()
    plain = InstanceData(
        bboxes=polygons_to_bboxes(polygons),
        polygons=polygons.clone(),
        scores=torch.tensor([0.8, 0.7]),
        labels=torch.tensor([0, 2]),
    )
    views = [
        DetDataSample(
            metainfo=_meta(True, 'horizontal'), pred_instances=_flipped_view(polygons, 'horizontal')
        ),
        DetDataSample(metainfo=_meta(False), pred_instances=plain),
    ]
    (merged,) = tta.merge_preds([views])
    assert merged.metainfo['flip'] is False and merged.img_id == 7
    result = merged.pred_instances
    # Object 0: the flipped view's 0.9 wins; object 1: the flipped view's 0.6 loses to 0.7.
    assert result.scores.tolist() == pytest.approx([0.9, 0.7])
    torch.testing.assert_close(result.polygons, polygons, atol=1e-4, rtol=0)


def test_merged_polygons_are_rounded_when_the_head_rounds_its_own():
    view = _flipped_view(_polygons(), 'horizontal')
    view.polygons = torch.floor(view.polygons + 0.5)  # what a rounding head returns
    views = [DetDataSample(metainfo=_meta(True, 'horizontal'), pred_instances=view)]
    plain = PolarTTAModel(module=tiny_model_cfg()).merge_preds([views])[0].pred_instances
    assert not torch.equal(plain.polygons, plain.polygons.round())  # unflipped by 99.5 - x
    tta = PolarTTAModel(module=tiny_model_cfg())
    tta.module.bbox_head.test_cfg['round_vertices'] = True
    rounded = tta.merge_preds([views])[0].pred_instances
    torch.testing.assert_close(rounded.polygons, torch.floor(plain.polygons + 0.5), rtol=0, atol=0)
    assert rounded.scores.tolist() == plain.scores.tolist()


def test_merge_of_another_class_keeps_both():
    tta = PolarTTAModel(module=tiny_model_cfg())
    polygons = _polygons()[:1]
    views = [
        DetDataSample(
            metainfo=_meta(False),
            pred_instances=InstanceData(
                bboxes=polygons_to_bboxes(polygons),
                polygons=polygons,
                scores=torch.tensor([score]),
                labels=torch.tensor([label]),
            ),
        )
        for score, label in ((0.5, 0), (0.4, 1))
    ]
    (merged,) = tta.merge_preds([views])
    assert merged.pred_instances.labels.tolist() == [0, 1]


def test_mask_nms_merges_on_the_polygons_tight_boxes():
    polygons = _polygons()[:1]
    far = polygons + torch.tensor([40.0, 0.0])  # the same shape 40 px to the right
    views = [
        DetDataSample(
            metainfo=_meta(False),
            pred_instances=InstanceData(
                bboxes=polygons_to_bboxes(polygons),  # both views report the same box
                polygons=shape,
                scores=torch.tensor([score]),
                labels=torch.tensor([0]),
            ),
        )
        for shape, score in ((polygons, 0.9), (far, 0.8))
    ]
    (box_merged,) = PolarTTAModel(module=tiny_model_cfg()).merge_preds([views])
    assert box_merged.pred_instances.scores.tolist() == pytest.approx([0.9])
    tta = PolarTTAModel(module=tiny_model_cfg(), tta_cfg=dict(mask_nms=True))
    (mask_merged,) = tta.merge_preds([views])
    assert mask_merged.pred_instances.scores.tolist() == pytest.approx([0.9, 0.8])
    torch.testing.assert_close(
        mask_merged.pred_instances.bboxes, polygons_to_bboxes(torch.cat((polygons, far)))
    )

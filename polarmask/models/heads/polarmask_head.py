"""The PolarMask head (Xie et al. 2020): classes, boxes, polar centerness and ray lengths.

Naming convention for shapes: N images, P points (all levels), C classes, R rays, n candidates
of one image. Lengths (box distances l, t, r, b and ray lengths) are in pixels of the network
input. Behaviour follows the original's 'current' code: ``docs/original_polarmask.md#model``,
``docs/original_polarmask.md#losses`` and ``docs/original_polarmask.md#decoding``.
"""

from __future__ import annotations

import torch
from mmcv.cnn import ConvModule, Scale, build_norm_layer
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from polarmask.models.layers import ModulatedDeformConv2dPack, polygon_nms
from polarmask.registry import MODELS, TASK_UTILS
from polarmask.structures import SampleList
from polarmask.structures.mask import round_vertices
from polarmask.structures.polar import (
    check_angle_convention,
    clamp_to_image,
    distance_to_boxes,
    level_points,
    polar_centerness,
    ray_directions,
    ray_step,
    rays_to_polygons,
)

INF = 1e8
REGRESS_RANGES = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF))


def _levels_to_points(mlvl_maps: list[Tensor]) -> Tensor:
    """Per-level maps (N, D, H_l, W_l) -> (N, P, D) float32, levels concatenated in order."""
    num_imgs, channels = mlvl_maps[0].shape[:2]
    flat = [m.permute(0, 2, 3, 1).reshape(num_imgs, -1, channels) for m in mlvl_maps]
    return torch.cat(flat, dim=1).float()


@MODELS.register_module()
class PolarMaskHead(BaseModule):
    """Dense head predicting, per FPN point, class logits, a box, a polar centerness and rays.

    Three towers of ``stacked_convs`` x (3x3 conv, GN, ReLU): ``cls_convs`` feeds ``polar_cls``
    and ``polar_centerness``, ``reg_convs`` feeds ``polar_reg`` and ``mask_convs`` feeds
    ``polar_mask``. Box distances and ray lengths are ``exp(scale_l * conv)`` with separate
    learnable scales per level (``scales_bbox``, ``scales_mask``). Parameter names equal the
    original's, so its checkpoints' ``bbox_head.*`` keys load by name. With ``use_dcn`` each
    tower conv is a modulated deformable conv with bias, and conv, GN and ReLU are separate tower
    entries, as in the original (``docs/original_polarmask.md#deformable-convolutions``).

    Args:
        num_classes: number of object classes C (no background channel).
        in_channels: channels of the FPN levels.
        stacked_convs: conv layers per tower.
        feat_channels: channels of the tower convs.
        strides: stride of each FPN level, in input pixels.
        regress_ranges: per level (lo, hi) range of max(l, t, r, b) assigned to it.
        num_rays: rays R per instance; must divide 360.
        angle_convention: 'current' or 'legacy' ray angles (``polarmask.structures.polar``).
        center_sample_radius: positives lie within this many strides of the mass centre.
        fill_missing_rays: ray targets that find no contour point within +-3 degrees take the
            ray's exact crossing with the contour instead of 1e-6 (off: the original's targets;
            on: small objects learn, see ``docs/demo_accuracy.md``).
        conv_cfg: conv layer config of the towers (None with ``use_dcn``).
        norm_cfg: norm layer config of the towers (GN 32 as the original).
        use_dcn: tower convs are :class:`ModulatedDeformConv2dPack` (DCNv2 with bias) followed
            by the norm and a ReLU: tower entries ``3i`` (``weight``, ``bias``,
            ``conv_offset_mask.*``), ``3i + 1`` (GN) and ``3i + 2`` (ReLU).
        centerness_factor: test score = cls * (sigmoid(centerness) + centerness_factor).
        bbox_branch: False drops the box tower, ``polar_reg`` and ``scales_bbox`` (the paper's
            ablation, which found the same mask AP without them, in a third less head compute):
            each point's box is then the tight box of its polygon (so NMS runs on the
            polygons' boxes, as with ``mask_nms``) and there is no ``loss_bbox``.
        loss_cls: classification loss (sigmoid focal).
        loss_bbox: box loss (IoU).
        loss_centerness: polar-centerness loss (BCE with logits).
        loss_mask: ray loss (polar IoU).
        train_cfg: training options (none are read at present; kept for the detector API).
        test_cfg: ``nms_pre``, ``score_thr``, ``nms=dict(type='nms', iou_threshold, offset,
            class_agnostic)`` (``class_agnostic``: one NMS over all classes instead of one per
            class, default False as the original),
            ``max_per_img``, ``mask_nms`` (the polygons' tight boxes replace the box branch's,
            for NMS and in the results, as in the original)), ``round_vertices`` (default False:
            the returned polygons' vertices are rounded to the nearest pixel of the output frame,
            so that rasterising them, which truncates vertices as the original, does not shift
            masks up and left by half a pixel on average; ``docs/demo_accuracy.md``).
        init_cfg: normal(0.01) convs, ``polar_cls`` bias for a 0.01 prior; with ``use_dcn``
            only the predictors, the towers keeping the deformable convs' init (as the original).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        stacked_convs: int = 4,
        feat_channels: int = 256,
        strides: tuple[int, ...] = (8, 16, 32, 64, 128),
        regress_ranges: tuple[tuple[float, float], ...] = REGRESS_RANGES,
        num_rays: int = 36,
        angle_convention: str = 'current',
        center_sample_radius: float = 1.5,
        fill_missing_rays: bool = False,
        conv_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        use_dcn: bool = False,
        centerness_factor: float = 0.5,
        bbox_branch: bool = True,
        loss_cls: dict | None = None,
        loss_bbox: dict | None = None,
        loss_centerness: dict | None = None,
        loss_mask: dict | None = None,
        train_cfg: dict | None = None,
        test_cfg: dict | None = None,
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        if init_cfg is None:
            cls_init = dict(type='Normal', name='polar_cls', std=0.01, bias_prob=0.01)
            if use_dcn:
                predictors = ('polar_reg',) if bbox_branch else ()
                predictors += ('polar_mask', 'polar_centerness')
                init_cfg = dict(
                    type='Normal',
                    std=0.01,
                    override=[cls_init] + [dict(name=name) for name in predictors],
                )
            else:
                init_cfg = dict(type='Normal', layer='Conv2d', std=0.01, override=cls_init)
        super().__init__(init_cfg)
        if use_dcn and conv_cfg is not None:
            raise ValueError(
                f'conv_cfg={conv_cfg} with use_dcn=True: the deformable towers take no conv_cfg; '
                f'set conv_cfg=None'
            )
        if len(strides) != len(regress_ranges):
            raise ValueError(
                f'need one regress range per stride: {len(strides)} strides, '
                f'{len(regress_ranges)} ranges'
            )
        ray_step(num_rays)
        check_angle_convention(angle_convention)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.stacked_convs = stacked_convs
        self.feat_channels = feat_channels
        self.strides = list(strides)
        self.regress_ranges = [tuple(r) for r in regress_ranges]
        self.num_rays = num_rays
        self.angle_convention = angle_convention
        self.centerness_factor = centerness_factor
        self.train_cfg = train_cfg
        self.test_cfg = ConfigDict(test_cfg or {})
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg or dict(type='GN', num_groups=32, requires_grad=True)
        self.use_dcn = use_dcn
        self.bbox_branch = bbox_branch

        self.loss_cls = MODELS.build(
            loss_cls
            or dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)
        )
        self.loss_bbox = (
            MODELS.build(loss_bbox or dict(type='IoULoss', loss_weight=1.0))
            if bbox_branch
            else None
        )
        self.loss_centerness = MODELS.build(
            loss_centerness or dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)
        )
        self.loss_mask = MODELS.build(loss_mask or dict(type='PolarIoULoss', loss_weight=1.0))
        self.target_generator = TASK_UTILS.build(
            dict(
                type='PolarTarget',
                strides=self.strides,
                regress_ranges=self.regress_ranges,
                center_sample_radius=center_sample_radius,
                num_rays=num_rays,
                fill_missing_rays=fill_missing_rays,
            )
        )
        self._init_layers()

    def _tower(self) -> nn.ModuleList:
        if self.use_dcn:
            return self._deformable_tower()
        return nn.ModuleList(
            ConvModule(
                self.in_channels if index == 0 else self.feat_channels,
                self.feat_channels,
                3,
                padding=1,
                conv_cfg=self.conv_cfg,
                norm_cfg=self.norm_cfg,
                bias=self.norm_cfg is None,
            )
            for index in range(self.stacked_convs)
        )

    def _deformable_tower(self) -> nn.ModuleList:
        layers = nn.ModuleList()
        for index in range(self.stacked_convs):
            in_channels = self.in_channels if index == 0 else self.feat_channels
            layers.append(ModulatedDeformConv2dPack(in_channels, self.feat_channels, 3, padding=1))
            layers.append(build_norm_layer(self.norm_cfg, self.feat_channels)[1])
            layers.append(nn.ReLU(inplace=True))
        return layers

    def _init_layers(self) -> None:
        # Creation order fixes the order of initialisation (and of the seeded random weights).
        self.cls_convs = self._tower()
        if self.bbox_branch:
            self.reg_convs = self._tower()
        self.mask_convs = self._tower()
        self.polar_cls = nn.Conv2d(self.feat_channels, self.num_classes, 3, padding=1)
        if self.bbox_branch:
            self.polar_reg = nn.Conv2d(self.feat_channels, 4, 3, padding=1)
        self.polar_mask = nn.Conv2d(self.feat_channels, self.num_rays, 3, padding=1)
        self.polar_centerness = nn.Conv2d(self.feat_channels, 1, 3, padding=1)
        if self.bbox_branch:
            self.scales_bbox = nn.ModuleList(Scale(1.0) for _ in self.strides)
        else:
            # (R, 2) ray directions as (R, 2, 1, 1) for the polygons' tight boxes in forward.
            directions = ray_directions(self.num_rays, self.angle_convention)
            self.register_buffer('_ray_directions', directions[..., None, None], persistent=False)
        self.scales_mask = nn.ModuleList(Scale(1.0) for _ in self.strides)

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], ...]:
        """Run the head on every FPN level.

        Args:
            x: per level (N, in_channels, H_l, W_l).

        Returns:
            tuple: ``cls_scores`` (N, C, H_l, W_l) logits, ``bbox_preds`` (N, 4, H_l, W_l)
            l, t, r, b in pixels, ``centernesses`` (N, 1, H_l, W_l) logits, ``ray_preds``
            (N, R, H_l, W_l) ray lengths in pixels; each a list over levels.
        """
        if len(x) != len(self.strides):
            raise ValueError(
                f'PolarMaskHead has {len(self.strides)} strides but got {len(x)} feature levels'
            )
        scales_bbox = self.scales_bbox if self.bbox_branch else [None] * len(x)
        outs = [
            self.forward_single(feat, scale_bbox, scale_mask)
            for feat, scale_bbox, scale_mask in zip(x, scales_bbox, self.scales_mask, strict=True)
        ]
        return tuple(list(level_outs) for level_outs in zip(*outs, strict=True))

    def forward_single(
        self, x: Tensor, scale_bbox: Scale | None, scale_mask: Scale
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One level: (N, in_channels, H, W) -> cls, bbox, centerness, rays (see ``forward``).

        Without the box branch (``scale_bbox`` None) the box is the polygon's tight box.
        """
        cls_feat, mask_feat = x, x
        for layer in self.cls_convs:
            cls_feat = layer(cls_feat)
        for layer in self.mask_convs:
            mask_feat = layer(mask_feat)
        cls_score = self.polar_cls(cls_feat)
        centerness = self.polar_centerness(cls_feat)
        ray_pred = scale_mask(self.polar_mask(mask_feat)).float().exp()
        if scale_bbox is None:
            return cls_score, self._polygon_box_distances(ray_pred), centerness, ray_pred
        reg_feat = x
        for layer in self.reg_convs:
            reg_feat = layer(reg_feat)
        bbox_pred = scale_bbox(self.polar_reg(reg_feat)).float().exp()
        return cls_score, bbox_pred, centerness, ray_pred

    def _polygon_box_distances(self, ray_pred: Tensor) -> Tensor:
        """(N, R, H, W) ray lengths -> (N, 4, H, W) l, t, r, b of each polygon's tight box."""
        offsets = ray_pred[:, :, None] * self._ray_directions  # (N, R, 2, H, W) vertex - point
        lowest, highest = offsets.amin(dim=1), offsets.amax(dim=1)  # (N, 2, H, W) each
        return torch.cat((-lowest, highest), dim=1)

    def prior_points(
        self, featmap_sizes: list[tuple[int, int]], dtype: torch.dtype, device: torch.device
    ) -> list[Tensor]:
        """Per level (H_l * W_l, 2) point coordinates (x, y) in input pixels."""
        return [
            level_points(tuple(size), stride, device=device, dtype=dtype)
            for size, stride in zip(featmap_sizes, self.strides, strict=True)
        ]

    def loss(self, x: tuple[Tensor, ...], batch_data_samples: SampleList) -> dict[str, Tensor]:
        """Forward and compute the losses of a batch with ``gt_instances``."""
        outs = self(x)
        batch_gt_instances = [sample.gt_instances for sample in batch_data_samples]
        batch_img_metas = [sample.metainfo for sample in batch_data_samples]
        return self.loss_by_feat(*outs, batch_gt_instances, batch_img_metas)

    def loss_by_feat(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        centernesses: list[Tensor],
        ray_preds: list[Tensor],
        batch_gt_instances: list[InstanceData],
        batch_img_metas: list[dict],
    ) -> dict[str, Tensor]:
        """The four PolarMask losses (``docs/original_polarmask.md#losses``).

        ``loss_cls``: focal, summed over all points and classes, divided by num_pos + N.
        ``loss_bbox``/``loss_mask``: IoU / polar IoU of the positives weighted by their
        polar-centerness targets and divided by the sum of those targets. ``loss_centerness``:
        BCE mean over positives. Without positives these three are zero and keep the graph.

        Args:
            cls_scores, bbox_preds, centernesses, ray_preds: the outputs of :meth:`forward`.
            batch_gt_instances: per image ``bboxes``, ``labels``, ``contours``, ``centers``.
            batch_img_metas: per image metainfo.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox`` (with the box branch), ``loss_mask``,
            ``loss_centerness``.
        """
        num_imgs = cls_scores[0].size(0)
        featmap_sizes = [score.shape[-2:] for score in cls_scores]
        device = bbox_preds[0].device
        mlvl_points = self.prior_points(featmap_sizes, bbox_preds[0].dtype, device)
        labels, bbox_targets, ray_targets = self.target_generator.get_targets(
            featmap_sizes, batch_gt_instances, self.num_classes, device
        )  # (N, P), (N, P, 4), (N, P, R), no grad

        flat_cls_scores = _levels_to_points(cls_scores).reshape(-1, self.num_classes)  # (N * P, C)
        flat_bbox_preds = _levels_to_points(bbox_preds).reshape(-1, 4)  # (N * P, 4)
        flat_centerness = _levels_to_points(centernesses).reshape(-1)  # (N * P,)
        flat_ray_preds = _levels_to_points(ray_preds).reshape(-1, self.num_rays)  # (N * P, R)
        flat_labels = labels.reshape(-1)
        flat_points = torch.cat(mlvl_points).repeat(num_imgs, 1)  # (N * P, 2)

        pos_inds = ((flat_labels >= 0) & (flat_labels < self.num_classes)).nonzero().reshape(-1)
        num_pos = pos_inds.numel()
        loss_cls = self.loss_cls(flat_cls_scores, flat_labels, avg_factor=num_pos + num_imgs)

        pos_bbox_preds = flat_bbox_preds[pos_inds]
        pos_ray_preds = flat_ray_preds[pos_inds]
        pos_centerness = flat_centerness[pos_inds]
        losses = dict(loss_cls=loss_cls)
        if num_pos == 0:
            if self.bbox_branch:
                losses['loss_bbox'] = pos_bbox_preds.sum() * 0
            losses['loss_mask'] = pos_ray_preds.sum() * 0
            losses['loss_centerness'] = pos_centerness.sum() * 0
            return losses
        pos_points = flat_points[pos_inds]
        pos_ray_targets = ray_targets.reshape(-1, self.num_rays)[pos_inds]
        centerness_targets = polar_centerness(pos_ray_targets)  # (n,)
        weight_sum = centerness_targets.sum()
        if self.bbox_branch:
            pos_bbox_targets = bbox_targets.reshape(-1, 4)[pos_inds]
            losses['loss_bbox'] = self.loss_bbox(
                distance_to_boxes(pos_points, pos_bbox_preds),
                distance_to_boxes(pos_points, pos_bbox_targets),
                weight=centerness_targets,
                avg_factor=weight_sum,
            )
        losses['loss_mask'] = self.loss_mask(
            pos_ray_preds, pos_ray_targets, weight=centerness_targets, avg_factor=weight_sum
        )
        losses['loss_centerness'] = self.loss_centerness(pos_centerness, centerness_targets)
        return losses

    def predict(
        self, x: tuple[Tensor, ...], batch_data_samples: SampleList, rescale: bool = False
    ) -> list[InstanceData]:
        """Forward and decode detections for each image of the batch."""
        batch_img_metas = [sample.metainfo for sample in batch_data_samples]
        return self.predict_by_feat(*self(x), batch_img_metas=batch_img_metas, rescale=rescale)

    def predict_by_feat(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        centernesses: list[Tensor],
        ray_preds: list[Tensor],
        batch_img_metas: list[dict],
        cfg: dict | None = None,
        rescale: bool = False,
    ) -> list[InstanceData]:
        """Decode the head outputs of a batch into detections.

        :meth:`decode_by_feat` then :meth:`postprocess`; as the original
        (``docs/original_polarmask.md#decoding``).

        Args:
            cls_scores, bbox_preds, centernesses, ray_preds: the outputs of :meth:`forward`.
            batch_img_metas: per image ``img_shape`` (H, W) and, for ``rescale``,
                ``scale_factor`` (w_scale, h_scale).
            cfg: test config; defaults to ``test_cfg``.
            rescale: return boxes and polygons in original-image pixels.

        Returns:
            list[InstanceData]: per image ``bboxes`` (n, 4), ``scores`` (n,), ``labels`` (n,),
            ``polygons`` (n, R, 2), sorted by decreasing score.
        """
        level_sizes = [score.shape[-2] * score.shape[-1] for score in cls_scores]
        dense = self.decode_by_feat(
            *(
                [m.detach() for m in maps]
                for maps in (cls_scores, bbox_preds, centernesses, ray_preds)
            )
        )
        return self.postprocess(dense, level_sizes, batch_img_metas, cfg, rescale)

    def decode_by_feat(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        centernesses: list[Tensor],
        ray_preds: list[Tensor],
        max_shape: tuple[int, int] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Decode every point of every level: the dense candidates of a batch.

        Traceable (no data-dependent shapes): the ONNX graph ends here.

        Args:
            cls_scores, bbox_preds, centernesses, ray_preds: the outputs of :meth:`forward`.
            max_shape: (H, W); when given, x is clamped to [0, W - 1] and y to [0, H - 1].

        Returns:
            tuple: ``scores`` (N, P, C) class probabilities, ``centerness`` (N, P)
            probabilities, ``bboxes`` (N, P, 4) x1y1x2y2 and ``polygons`` (N, P, R, 2) with
            vertex k on ray k, in input pixels; points level by level, row-major in a level.
        """
        featmap_sizes = [score.shape[-2:] for score in cls_scores]
        points = torch.cat(
            self.prior_points(featmap_sizes, torch.float32, cls_scores[0].device)
        )  # (P, 2)
        bboxes = distance_to_boxes(points, _levels_to_points(bbox_preds), max_shape)
        polygons = rays_to_polygons(
            points, _levels_to_points(ray_preds), max_shape, self.angle_convention
        )
        return (
            _levels_to_points(cls_scores).sigmoid(),
            _levels_to_points(centernesses).squeeze(-1).sigmoid(),
            bboxes,
            polygons,
        )

    def postprocess(
        self,
        dense: tuple[Tensor, Tensor, Tensor, Tensor],
        level_sizes: list[int],
        batch_img_metas: list[dict],
        cfg: dict | None = None,
        rescale: bool = False,
    ) -> list[InstanceData]:
        """Detections of each image from the dense candidates of a batch (:meth:`decode_by_feat`).

        Per image and level keeps the ``nms_pre`` points of highest max class probability x
        centerness, clamps boxes and polygons to ``img_shape``, then :meth:`_bbox_post_process`.

        Args:
            dense: ``scores`` (N, P, C), ``centerness`` (N, P), ``bboxes`` (N, P, 4) and
                ``polygons`` (N, P, R, 2), in input pixels.
            level_sizes: points of each level (H_l * W_l), in order.
            batch_img_metas, cfg, rescale: as for :meth:`predict_by_feat`.

        Returns:
            list[InstanceData]: per image, as :meth:`predict_by_feat` returns them.
        """
        scores, centerness, bboxes, polygons = dense
        cfg = self.test_cfg if cfg is None else ConfigDict(cfg)
        if sum(level_sizes) != scores.shape[1]:
            raise ValueError(
                f'{scores.shape[1]} candidates per image but the levels have {sum(level_sizes)} '
                'points; pass the H_l * W_l of every level of the batch the candidates come from'
            )
        return [
            self._postprocess_single(
                InstanceData(
                    scores=scores[img_id],
                    centerness=centerness[img_id],
                    bboxes=bboxes[img_id],
                    polygons=polygons[img_id],
                ),
                level_sizes,
                img_meta,
                cfg,
                rescale,
            )
            for img_id, img_meta in enumerate(batch_img_metas)
        ]

    def _postprocess_single(
        self,
        candidates: InstanceData,
        level_sizes: list[int],
        img_meta: dict,
        cfg: ConfigDict,
        rescale: bool,
    ) -> InstanceData:
        """One image of :meth:`postprocess`: candidates (P, ...) -> kept detections."""
        candidates = candidates[
            self.pre_nms_indices(
                candidates.scores, candidates.centerness, level_sizes, cfg.get('nms_pre', -1)
            )
        ]
        img_shape = tuple(img_meta['img_shape'][:2])
        candidates.bboxes = clamp_to_image(candidates.bboxes.view(-1, 2, 2), img_shape).view(-1, 4)
        candidates.polygons = clamp_to_image(candidates.polygons, img_shape)
        return self._bbox_post_process(candidates, cfg, rescale, img_meta)

    @staticmethod
    def pre_nms_indices(
        scores: Tensor, centerness: Tensor, level_sizes: list[int], nms_pre: int
    ) -> Tensor:
        """Indices of the points that post-processing keeps before thresholding and NMS.

        Per level, the ``nms_pre`` points of highest max class probability x centerness (all of
        a level's points when it has at most ``nms_pre``, or ``nms_pre`` <= 0).

        Args:
            scores: (P, C) class probabilities of one image.
            centerness: (P,) centerness probabilities.
            level_sizes: points of each level (H_l * W_l), in order.
            nms_pre: points kept per level.

        Returns:
            Tensor: (n,) int64 point indices, level by level.
        """
        kept = []
        for level_inds in torch.arange(len(scores), device=scores.device).split(level_sizes):
            if 0 < nms_pre < level_inds.numel():
                ranking = scores[level_inds] * centerness[level_inds, None]
                level_inds = level_inds[ranking.max(dim=1).values.topk(nms_pre).indices]
            kept.append(level_inds)
        return torch.cat(kept)

    def _bbox_post_process(
        self, results: InstanceData, cfg: ConfigDict, rescale: bool, img_meta: dict
    ) -> InstanceData:
        """Rescale, threshold, score with centerness, class-wise NMS, keep the top ``max_per_img``.

        As the original, rescaling happens before NMS (whose ``+1`` areas are then in original
        pixels), the threshold applies to the raw class probability, and the final score is
        ``prob * (centerness + centerness_factor)``.

        Args:
            results: candidates with ``bboxes`` (n, 4), ``polygons`` (n, R, 2), ``scores``
                (n, C) class probabilities, ``centerness`` (n,) probabilities.
            cfg: test config (see the class docstring).
            rescale: divide x by w_scale and y by h_scale of ``img_meta['scale_factor']``.
            img_meta: the image's metainfo.

        Returns:
            InstanceData: ``bboxes``, ``scores``, ``labels``, ``polygons`` of the kept detections;
            with ``mask_nms`` the boxes are the polygons' tight boxes.
        """
        bboxes, polygons = results.bboxes, results.polygons
        if rescale:
            w_scale, h_scale = img_meta['scale_factor'][:2]
            bboxes = bboxes / bboxes.new_tensor([w_scale, h_scale, w_scale, h_scale])
            polygons = polygons / polygons.new_tensor([w_scale, h_scale])
        cand_inds, labels = (results.scores > cfg.get('score_thr', 0.05)).nonzero(as_tuple=True)
        scores = results.scores[cand_inds, labels] * (
            results.centerness[cand_inds] + self.centerness_factor
        )
        nms_cfg = cfg.get('nms', dict(type='nms', iou_threshold=0.5, offset=1))
        if nms_cfg.get('type', 'nms') != 'nms':
            raise ValueError(f"test_cfg.nms.type must be 'nms' (got {nms_cfg['type']!r})")
        kept = polygon_nms(
            InstanceData(
                bboxes=bboxes[cand_inds], scores=scores, labels=labels, polygons=polygons[cand_inds]
            ),
            nms_cfg['iou_threshold'],
            nms_cfg.get('offset', 1),
            nms_cfg.get('class_agnostic', False),
            cfg.get('max_per_img', 100),
            cfg.get('mask_nms', False),
        )
        kept.polygons = self.output_vertices(kept.polygons, cfg)
        return kept

    def output_vertices(self, polygons: Tensor, cfg: dict | None = None) -> Tensor:
        """Polygons (n, R, 2) as the head returns them: vertices rounded to the nearest pixel
        with ``round_vertices`` in ``cfg`` (the head's test config by default), else unchanged."""
        cfg = self.test_cfg if cfg is None else cfg
        return round_vertices(polygons) if cfg.get('round_vertices', False) else polygons

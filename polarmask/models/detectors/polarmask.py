"""The PolarMask detector: backbone -> FPN -> PolarMaskHead."""

from __future__ import annotations

import copy

from mmengine.model import BaseModel
from torch import Tensor, nn

from polarmask.registry import MODELS
from polarmask.structures import SampleList


@MODELS.register_module()
class PolarMask(BaseModel):
    """PolarMask (Xie et al. 2020), a single-shot instance segmenter with polar contours.

    Attributes ``backbone``, ``neck`` and ``bbox_head`` carry the original's state-dict prefixes.

    Args:
        backbone: backbone config (e.g. ``ResNet``).
        neck: neck config (``FPN``).
        bbox_head: head config (``PolarMaskHead``); ``train_cfg`` and ``test_cfg`` are passed
            to it.
        train_cfg: training options of the head.
        test_cfg: test options of the head (``nms_pre``, ``score_thr``, ``nms``,
            ``max_per_img``, ``mask_nms``).
        data_preprocessor: config or module; defaults to ``PolarDataPreprocessor()``.
        init_cfg: mmengine init config of the whole model.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict,
        bbox_head: dict,
        train_cfg: dict | None = None,
        test_cfg: dict | None = None,
        data_preprocessor: dict | nn.Module | None = None,
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='PolarDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        bbox_head = copy.deepcopy(bbox_head)
        bbox_head.update(train_cfg=train_cfg, test_cfg=test_cfg)
        self.bbox_head = MODELS.build(bbox_head)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def extract_feat(self, inputs: Tensor) -> tuple[Tensor, ...]:
        """(N, 3, H, W) normalised images -> FPN levels (N, C_fpn, H_l, W_l)."""
        return self.neck(self.backbone(inputs))

    def forward(
        self, inputs: Tensor, data_samples: SampleList | None = None, mode: str = 'tensor'
    ) -> dict[str, Tensor] | SampleList | tuple[list[Tensor], ...]:
        """Dispatch on ``mode``.

        Args:
            inputs: (N, 3, H, W) batch from the data preprocessor.
            data_samples: the batch's ``DetDataSample`` list (needed for 'loss' and 'predict').
            mode: 'loss' -> dict of losses; 'predict' -> data samples with ``pred_instances``
                in original-image pixels; 'tensor' -> the head's raw per-level outputs.
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs)
        raise ValueError(f"invalid mode {mode!r}: use 'loss', 'predict' or 'tensor'")

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict[str, Tensor]:
        """Losses of a batch (``CheckInvalidLossHook`` stops training on a non-finite one)."""
        return self.bbox_head.loss(self.extract_feat(inputs), data_samples)

    def predict(self, inputs: Tensor, data_samples: SampleList, rescale: bool = True) -> SampleList:
        """Detections per image in ``pred_instances`` (original pixels when ``rescale``)."""
        results_list = self.bbox_head.predict(
            self.extract_feat(inputs), data_samples, rescale=rescale
        )
        for data_sample, results in zip(data_samples, results_list, strict=True):
            data_sample.pred_instances = results
        return data_samples

    def _forward(self, inputs: Tensor) -> tuple[list[Tensor], ...]:
        """Raw head outputs ``(cls_scores, bbox_preds, centernesses, ray_preds)``."""
        return self.bbox_head(self.extract_feat(inputs))

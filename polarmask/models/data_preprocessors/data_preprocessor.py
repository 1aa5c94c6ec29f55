"""Batching of images: normalisation, padding, and the batch shape in each sample's metainfo."""

from __future__ import annotations

from mmengine.model import ImgDataPreprocessor

from polarmask.registry import MODELS


@MODELS.register_module()
class PolarDataPreprocessor(ImgDataPreprocessor):
    """mmengine's ``ImgDataPreprocessor`` that also records the batch shape in the samples.

    Images (uint8 CHW, BGR as loaded) are moved to the model's device, optionally flipped to RGB,
    normalised with ``mean``/``std`` and zero-padded (``pad_value``, after normalisation, as the
    original) at the bottom/right to a common size divisible by ``pad_size_divisor``. Each data
    sample then gets ``batch_input_shape`` and ``pad_shape`` = (H, W) of the batch tensor.

    Args:
        mean: per-channel mean, in the channel order after ``bgr_to_rgb``.
        std: per-channel std.
        bgr_to_rgb: flip BGR input to RGB (pytorch-style weights); False for caffe weights.
        pad_size_divisor: pad height and width up to multiples of this.
        pad_value: value of padded pixels.
        **kwargs: other ``ImgDataPreprocessor`` arguments (e.g. ``non_blocking``).
    """

    def __init__(
        self,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        bgr_to_rgb: bool = False,
        pad_size_divisor: int = 1,
        pad_value: float = 0,
        **kwargs,
    ) -> None:
        super().__init__(
            mean=mean,
            std=std,
            bgr_to_rgb=bgr_to_rgb,
            pad_size_divisor=pad_size_divisor,
            pad_value=pad_value,
            **kwargs,
        )

    @property
    def bgr_to_rgb(self) -> bool:
        """Whether the input's channels are flipped from BGR to RGB."""
        return bool(self._channel_conversion)

    @property
    def normalize(self) -> bool:
        """Whether the input is normalised with ``mean`` and ``std``."""
        return bool(self._enable_normalize)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Args: data with ``inputs`` (list of (3, H_i, W_i) tensors or (N, 3, H, W)) and
        ``data_samples``. Returns ``dict(inputs=(N, 3, H, W) float, data_samples=...)``."""
        data = super().forward(data, training)
        data_samples = data.get('data_samples')
        if data_samples is not None:
            batch_input_shape = tuple(data['inputs'].shape[-2:])
            for data_sample in data_samples:
                data_sample.set_metainfo(
                    dict(batch_input_shape=batch_input_shape, pad_shape=batch_input_shape)
                )
        return data

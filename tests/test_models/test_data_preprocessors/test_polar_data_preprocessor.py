"""PolarDataPreprocessor: normalisation, padding, batch shape in the metainfo."""

import torch

from polarmask.models.data_preprocessors import PolarDataPreprocessor
from polarmask.structures import DetDataSample


def _batch():
    images = [
        torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8),
        torch.randint(0, 256, (3, 50, 20), dtype=torch.uint8),
    ]
    samples = [
        DetDataSample(metainfo=dict(img_shape=(30, 40), pad_shape=(30, 40))),
        DetDataSample(metainfo=dict(img_shape=(50, 20), pad_shape=(50, 20))),
    ]
    return images, samples


def test_caffe_normalisation_padding_and_metainfo():
    torch.manual_seed(0)
    images, samples = _batch()
    mean = [102.9801, 115.9465, 122.7717]
    preprocessor = PolarDataPreprocessor(
        mean=mean, std=[1.0, 1.0, 1.0], bgr_to_rgb=False, pad_size_divisor=32
    )
    out = preprocessor(dict(inputs=images, data_samples=samples))
    inputs = out['inputs']
    assert inputs.shape == (2, 3, 64, 64)
    expected = images[0].float() - torch.tensor(mean)[:, None, None]
    torch.testing.assert_close(inputs[0, :, :30, :40], expected)
    assert torch.count_nonzero(inputs[0, :, 30:, :]) == 0
    assert torch.count_nonzero(inputs[1, :, :, 20:]) == 0
    for sample in out['data_samples']:
        assert sample.batch_input_shape == (64, 64)
        assert sample.pad_shape == (64, 64)
    assert out['data_samples'][1].img_shape == (50, 20)


def test_pytorch_style_rgb_normalisation():
    torch.manual_seed(0)
    images, samples = _batch()
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    preprocessor = PolarDataPreprocessor(mean=mean, std=std, bgr_to_rgb=True)
    out = preprocessor(dict(inputs=images[:1], data_samples=samples[:1]))
    inputs = out['inputs']
    rgb = images[0].flip(0).float()
    expected = (rgb - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    torch.testing.assert_close(inputs[0], expected)
    assert out['data_samples'][0].batch_input_shape == (30, 40)

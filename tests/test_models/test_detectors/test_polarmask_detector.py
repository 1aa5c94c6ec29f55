"""PolarMask detector: training and inference on CPU, the R-50 config, original checkpoints."""

import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from polarmask.models.detectors import PolarMask, convert_original_state_dict
from polarmask.registry import MODELS
from polarmask.utils import register_all_modules
from tests.tiny_model import r50_model_cfg, shrink_model_cfg, tiny_batch, tiny_model_cfg

R50_MODEL = r50_model_cfg()
TINY_MODEL = tiny_model_cfg()
DCN_R50_CONFIG = Config.fromfile(
    str(Path(__file__).resolve().parents[3] / 'configs/polarmask/32gpu/polar_768_1x_r50_dcn2.py')
)


def original_r50_state_dict(dcn: bool = False) -> dict[str, tuple[int, ...]]:
    """Every key of the original R-50 PolarMask model with its shape; with ``dcn`` of its
    ``polar_768_1x_r50_dcn2`` model.

    As listed in ``docs/original_polarmask.md#model`` and
    ``docs/original_polarmask.md#deformable-convolutions``.
    """
    keys = {}

    def bn(prefix, channels):
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            keys[f'{prefix}.{name}'] = (channels,)
        keys[f'{prefix}.num_batches_tracked'] = ()

    keys['backbone.conv1.weight'] = (64, 3, 7, 7)
    bn('backbone.bn1', 64)
    in_channels = 64
    for stage, num_blocks in enumerate((3, 4, 6, 3), start=1):
        planes = 64 * 2 ** (stage - 1)
        for block in range(num_blocks):
            prefix = f'backbone.layer{stage}.{block}'
            keys[f'{prefix}.conv1.weight'] = (planes, in_channels, 1, 1)
            bn(f'{prefix}.bn1', planes)
            keys[f'{prefix}.conv2.weight'] = (planes, planes, 3, 3)
            if dcn and stage > 1:
                keys[f'{prefix}.conv2_offset.weight'] = (18, planes, 3, 3)
                keys[f'{prefix}.conv2_offset.bias'] = (18,)
            bn(f'{prefix}.bn2', planes)
            keys[f'{prefix}.conv3.weight'] = (planes * 4, planes, 1, 1)
            bn(f'{prefix}.bn3', planes * 4)
            if block == 0:
                keys[f'{prefix}.downsample.0.weight'] = (planes * 4, in_channels, 1, 1)
                bn(f'{prefix}.downsample.1', planes * 4)
            in_channels = planes * 4
    for index, channels in enumerate((512, 1024, 2048)):
        keys[f'neck.lateral_convs.{index}.conv.weight'] = (256, channels, 1, 1)
        keys[f'neck.lateral_convs.{index}.conv.bias'] = (256,)
    for index in range(5):
        keys[f'neck.fpn_convs.{index}.conv.weight'] = (256, 256, 3, 3)
        keys[f'neck.fpn_convs.{index}.conv.bias'] = (256,)
    for tower in ('cls_convs', 'reg_convs', 'mask_convs'):
        for index in range(4):
            if dcn:  # [conv, GN, ReLU] x 4, the conv with bias and its offset + mask conv
                conv, norm = f'bbox_head.{tower}.{3 * index}', f'bbox_head.{tower}.{3 * index + 1}'
                keys[f'{conv}.bias'] = (256,)
                keys[f'{conv}.conv_offset_mask.weight'] = (27, 256, 3, 3)
                keys[f'{conv}.conv_offset_mask.bias'] = (27,)
            else:
                conv, norm = f'bbox_head.{tower}.{index}.conv', f'bbox_head.{tower}.{index}.gn'
            keys[f'{conv}.weight'] = (256, 256, 3, 3)
            keys[f'{norm}.weight'] = (256,)
            keys[f'{norm}.bias'] = (256,)
    for name, channels in (('cls', 80), ('reg', 4), ('mask', 36), ('centerness', 1)):
        keys[f'bbox_head.polar_{name}.weight'] = (channels, 256, 3, 3)
        keys[f'bbox_head.polar_{name}.bias'] = (channels,)
    for index in range(5):
        keys[f'bbox_head.scales_bbox.{index}.scale'] = ()
        keys[f'bbox_head.scales_mask.{index}.scale'] = ()
    return keys


def _fake_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Cheap tensors of the given shapes; ``polar_mask.bias`` counts 0..35 to trace the roll."""
    state = {key: torch.zeros(shape) for key, shape in shapes.items()}
    for key, value in state.items():
        if key.endswith('running_var'):
            value.fill_(1.0)
        elif key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(0)
    state['bbox_head.polar_mask.bias'] = torch.arange(36.0)
    return state


def _tiny_model() -> PolarMask:
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(TINY_MODEL))
    model.init_weights()
    return model


@pytest.mark.parametrize(
    ('model_cfg', 'dcn'),
    [(R50_MODEL, False), (DCN_R50_CONFIG.model.to_dict(), True)],
    ids=['r50', 'r50_dcn2'],
)
def test_r50_config_builds_on_cpu_with_original_parameter_names(model_cfg, dcn):
    model = MODELS.build(copy.deepcopy(model_cfg))
    assert isinstance(model, PolarMask)
    expected = original_r50_state_dict(dcn)
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == expected
    assert model.bbox_head.target_generator.num_rays == 36
    assert not model.backbone.layer1[0].conv1.weight.requires_grad
    assert model.backbone.layer2[0].conv1.stride == (2, 2)


@pytest.mark.parametrize(
    ('model_cfg', 'dcn'),
    [(R50_MODEL, False), (DCN_R50_CONFIG.model.to_dict(), True)],
    ids=['r50', 'r50_dcn2'],
)
@torch.no_grad()
def test_original_format_state_dict_loads_and_runs(model_cfg, dcn):
    model = MODELS.build(copy.deepcopy(model_cfg)).eval()
    state = _fake_state(original_r50_state_dict(dcn))
    result = model.load_state_dict(state, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []

    legacy = {key.replace('polar_', 'fcos_'): value for key, value in state.items()}
    converted, unmapped = convert_original_state_dict(legacy)
    assert unmapped == []
    model.load_state_dict(converted, strict=True)
    torch.testing.assert_close(
        model.bbox_head.polar_mask.bias, state['bbox_head.polar_mask.bias'].roll(-9)
    )
    cls_scores, bbox_preds, centernesses, ray_preds = model(torch.randn(1, 3, 64, 96))
    assert [tuple(s.shape[-2:]) for s in cls_scores] == [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    assert ray_preds[0].shape[1] == 36 and cls_scores[0].shape[1] == 80


def test_training_step_on_cpu():
    model = _tiny_model().train()
    data = model.data_preprocessor(tiny_batch(), training=True)
    assert data['inputs'].shape == (2, 3, 96, 128)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_mask', 'loss_centerness'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    loss, log_vars = model.parse_losses(losses)
    loss.backward()
    grads = [p.grad for p in model.bbox_head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.backbone.layer1[0].conv1.weight.grad is None
    assert model.backbone.layer2[0].conv1.weight.grad is not None


def test_dcn_training_step_on_cpu():
    """One SGD step of the DCN R-50 config's model, shrunk, with the config's optimizer."""
    cfg = shrink_model_cfg(DCN_R50_CONFIG.model.to_dict())
    # From scratch with frozen BN, zeroed residual norms would stop every gradient in the blocks.
    cfg['backbone']['zero_init_residual'] = False
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    register_all_modules()  # the config's optimizer constructor is polarmask's
    optim_wrapper = build_optim_wrapper(model, DCN_R50_CONFIG.optim_wrapper)
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    data = model.data_preprocessor(tiny_batch(), training=True)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    optim_wrapper.update_params(model.parse_losses(losses)[0])
    params = dict(model.named_parameters())
    for name in (
        'backbone.layer2.0.conv2.weight',
        'backbone.layer4.2.conv2_offset.weight',
        'bbox_head.cls_convs.0.conv_offset_mask.weight',
        'bbox_head.mask_convs.3.weight',
        'bbox_head.reg_convs.1.bias',
    ):
        assert torch.isfinite(params[name]).all(), name
        assert not torch.equal(params[name], before[name]), name
    assert torch.equal(
        params['backbone.layer1.0.conv2.weight'], before['backbone.layer1.0.conv2.weight']
    )


def test_images_without_instances_train():
    model = _tiny_model().train()
    data = model.data_preprocessor(tiny_batch(with_gt=(False, False)), training=True)
    losses = model(**data, mode='loss')
    assert losses['loss_cls'] > 0 and losses['loss_mask'] == 0
    model.parse_losses(losses)[0].backward()


@torch.no_grad()
def test_batch_predict_rescale_true_and_false():
    model = _tiny_model().eval()
    model.bbox_head.polar_cls.bias.fill_(0.0)  # detections everywhere
    data = model.data_preprocessor(tiny_batch(), training=False)
    raw = model(**copy.deepcopy(data), mode='tensor')
    assert len(raw) == 4 and raw[0][0].shape == (2, 3, 12, 16)

    scaled = model(**copy.deepcopy(data), mode='predict')
    plain = model.predict(data['inputs'], copy.deepcopy(data['data_samples']), rescale=False)
    assert len(scaled) == len(plain) == 2
    for image, (with_scale, without) in enumerate(zip(scaled, plain, strict=True)):
        height, width = data['data_samples'][image].img_shape
        first, second = with_scale.pred_instances, without.pred_instances
        assert 0 < len(first) <= 100 and 0 < len(second) <= 100
        assert first.polygons.shape[1:] == (36, 2)
        assert first.labels.dtype == torch.long
        assert second.polygons[..., 0].max() <= width - 1
        assert second.polygons[..., 1].max() <= height - 1
        assert first.polygons[..., 1].max() <= 2 * (height - 1)
        torch.testing.assert_close(
            first.bboxes[0], second.bboxes[0] / torch.tensor([1.0, 0.5, 1.0, 0.5])
        )
        torch.testing.assert_close(first.polygons[0], second.polygons[0] / torch.tensor([1.0, 0.5]))
        assert torch.all(first.scores[:-1] >= first.scores[1:])


def test_invalid_mode():
    model = _tiny_model()
    with pytest.raises(ValueError, match='invalid mode'):
        model(torch.zeros(1, 3, 32, 32), None, mode='train')


def test_init_weights_loads_a_local_backbone_checkpoint(tmp_path):
    backbone_cfg = copy.deepcopy(TINY_MODEL['backbone'])
    source = MODELS.build(backbone_cfg)
    torch.manual_seed(3)
    for param in source.parameters():
        param.data.normal_()
    path = tmp_path / 'tiny_backbone.pth'
    torch.save(source.state_dict(), path)

    cfg = copy.deepcopy(TINY_MODEL)
    cfg['backbone']['init_cfg'] = dict(type='Pretrained', checkpoint=str(path))
    model = MODELS.build(cfg)
    model.init_weights()
    torch.testing.assert_close(model.backbone.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert model.bbox_head.polar_cls.bias[0].item() == pytest.approx(-4.59512, abs=1e-5)
    assert torch.count_nonzero(model.neck.fpn_convs[0].conv.bias) == 0

"""ResNet / ResNeXt: torchvision equivalence, styles, freezing, pretrained loading."""

from urllib.error import URLError

import pytest
import torch
import torchvision
from torch import nn

from polarmask.models.backbones import ResNet, ResNeXt
from polarmask.models.backbones import pretrained as pretrained_module


def randomise_norms(model: nn.Module) -> None:
    """Seeded random statistics and affine parameters for every BatchNorm (not identities)."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.rand(size, generator=generator) * 0.2 - 0.1)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(size, generator=generator) * 0.2 - 0.1)


def _torchvision_stages(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    outs = []
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        x = layer(x)
        outs.append(x)
    return outs


@pytest.mark.parametrize(
    ('ours', 'reference'),
    [
        (lambda: ResNet(depth=50), torchvision.models.resnet50),
        (lambda: ResNeXt(depth=50, groups=32, base_width=4), torchvision.models.resnext50_32x4d),
        (lambda: ResNet(depth=18), torchvision.models.resnet18),
    ],
    ids=['resnet50', 'resnext50_32x4d', 'resnet18'],
)
@torch.no_grad()
def test_matches_torchvision(ours, reference):
    torch.manual_seed(0)
    reference_model = reference().eval()
    randomise_norms(reference_model)
    model = ours().eval()
    result = model.load_state_dict(reference_model.state_dict(), strict=False)
    assert result.missing_keys == []
    assert sorted(result.unexpected_keys) == ['fc.bias', 'fc.weight']
    x = torch.randn(2, 3, 64, 96)
    outs = model(x)
    expected = _torchvision_stages(reference_model, x)
    assert len(outs) == 4
    for out, exp in zip(outs, expected, strict=True):
        assert out.shape == exp.shape
        torch.testing.assert_close(out, exp, rtol=1e-4, atol=1e-5)


def test_caffe_style_strides_first_conv():
    caffe = ResNet(depth=50, style='caffe')
    pytorch = ResNet(depth=50, style='pytorch')
    for stage in ('layer2', 'layer3', 'layer4'):
        assert getattr(caffe, stage)[0].conv1.stride == (2, 2)
        assert getattr(caffe, stage)[0].conv2.stride == (1, 1)
        assert getattr(pytorch, stage)[0].conv1.stride == (1, 1)
        assert getattr(pytorch, stage)[0].conv2.stride == (2, 2)
    outs = caffe.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (256, 16, 16),
        (512, 8, 8),
        (1024, 4, 4),
        (2048, 2, 2),
    ]


def test_frozen_stages_and_norm_eval():
    model = ResNet(
        depth=18, frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True
    )
    model.train()
    for name, param in model.named_parameters():
        frozen = name.startswith(('conv1', 'bn1', 'layer1'))
        is_norm = '.bn' in name or name.startswith('bn1') or 'downsample.1' in name
        assert param.requires_grad == (not frozen and not is_norm), name
    assert not model.layer1.training
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = model.layer2[0].bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(model.layer2[0].bn1.running_mean, before)

    trainable = ResNet(depth=18, frozen_stages=-1, norm_eval=False).train()
    assert all(m.training for m in trainable.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(p.requires_grad for p in trainable.parameters())


def test_out_indices_and_checkpointing_give_same_outputs():
    torch.manual_seed(0)
    model = ResNet(depth=18, out_indices=(1, 3)).train()
    model.init_weights()
    checkpointed = ResNet(depth=18, out_indices=(1, 3), with_cp=True).train()
    checkpointed.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    outs = model(x)
    outs_cp = checkpointed(x)
    assert [o.shape[1] for o in outs] == [128, 512]
    for out, out_cp in zip(outs, outs_cp, strict=True):
        torch.testing.assert_close(out, out_cp)
    outs_cp[-1].sum().backward()
    assert checkpointed.layer3[0].conv1.weight.grad is not None


def test_default_init_zeroes_residual_norms():
    model = ResNet(depth=50)
    model.init_weights()
    assert torch.count_nonzero(model.layer1[0].bn3.weight) == 0
    assert torch.all(model.bn1.weight == 1)
    assert model.conv1.weight.std() > 0


def test_pretrained_local_file(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.resnet18()
    path = tmp_path / 'resnet18.pth'
    torch.save(source.state_dict(), path)
    model = ResNet(depth=18, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    torch.testing.assert_close(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    torch.testing.assert_close(model.bn1.running_var, source.bn1.running_var)


def test_pretrained_prefix_from_detector_checkpoint(tmp_path):
    source = ResNet(depth=18)
    source.init_weights()
    path = tmp_path / 'detector.pth'
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    torch.save(dict(state_dict=state, meta=dict(epoch=12)), path)
    model = ResNet(
        depth=18, init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.')
    )
    model.init_weights()
    torch.testing.assert_close(model.layer4[0].conv1.weight, source.layer4[0].conv1.weight)


def test_pretrained_without_network_names_url_and_fix(monkeypatch):
    def offline(url):
        raise URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(pretrained_module, '_download', offline)
    model = ResNet(
        depth=50,
        style='caffe',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet50_caffe'),
    )
    with pytest.raises(RuntimeError) as info:
        model.init_weights()
    message = str(info.value)
    assert 'https://download.openmmlab.com/pretrain/third_party/resnet50_caffe' in message
    assert '--cfg-options model.backbone.init_cfg.checkpoint=' in message


def test_torchvision_url_resolves():
    url = pretrained_module.resolve_checkpoint_url('torchvision://resnet50')
    assert url.startswith('https://download.pytorch.org/models/resnet50')
    assert pretrained_module.resolve_checkpoint_url('/some/local.pth') is None
    with pytest.raises(KeyError, match='no_such_model'):
        pretrained_module.resolve_checkpoint_url('open-mmlab://no_such_model')


def test_missing_local_file_names_path(tmp_path):
    model = ResNet(depth=18, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'x.pth')))
    with pytest.raises(FileNotFoundError, match='x.pth'):
        model.init_weights()


def test_bad_arguments():
    with pytest.raises(KeyError, match='depth 42'):
        ResNet(depth=42)
    with pytest.raises(ValueError, match='style'):
        ResNet(depth=18, style='tensorflow')
    with pytest.raises(KeyError):
        ResNeXt(depth=18, groups=32)

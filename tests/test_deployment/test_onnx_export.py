"""ONNX export of the demo model: onnxruntime matches PyTorch at two sizes with a batch of 2,
and the graph's outputs plus the post-processing outside it give ``PolarMask.predict``."""

import importlib.util
import json
from pathlib import Path

import onnx
import pytest
import torch
from mmengine.config import Config

from polarmask.apis import init_detector
from polarmask.deployment import (
    OUTPUT_NAMES,
    compare_outputs,
    export_onnx,
    postprocess_outputs,
    run_onnxruntime,
)
from polarmask.registry import MODELS
from polarmask.structures import DetDataSample
from polarmask.structures.polar import featmap_sizes_for
from tests.tiny_model import tiny_model_cfg

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / 'configs/polarmask/demo/polar_shapes_r18.py')
STRIDES = tuple(Config.fromfile(DEMO).model.bbox_head.strides)

spec = importlib.util.spec_from_file_location(
    'pytorch2onnx', ROOT / 'tools' / 'deployment' / 'pytorch2onnx.py'
)
pytorch2onnx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pytorch2onnx)


def demo_model() -> torch.nn.Module:
    """The demo network with seeded random weights and non-trivial scores and rays."""
    torch.manual_seed(0)
    model = init_detector(DEMO)
    model.init_weights()
    head = model.bbox_head
    with torch.no_grad():
        head.polar_cls.bias.fill_(-1.0)  # probabilities ~0.27 instead of the 0.01 prior
        for scale in head.scales_mask:
            scale.scale.fill_(30.0)  # rays of a few to tens of pixels instead of ~1
    return model.eval()


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    model = demo_model()
    path = str(tmp_path_factory.mktemp('onnx') / 'polar_shapes_r18.onnx')
    wrapper = export_onnx(model, path, (256, 256), dynamic_export=True)
    return model, wrapper, path


def num_points(height: int, width: int) -> int:
    pad_shape = (-(-height // 32) * 32, -(-width // 32) * 32)
    return sum(h * w for h, w in featmap_sizes_for(pad_shape, list(STRIDES)))


@pytest.mark.parametrize('shape', [(256, 256), (200, 296)])
def test_onnxruntime_matches_pytorch_batch_of_two(exported, shape):
    model, wrapper, path = exported
    inputs = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        reference = wrapper(inputs)
    outputs = run_onnxruntime(path, inputs)
    expected_points = num_points(*shape)
    assert outputs['scores'].shape == (2, expected_points, 6)
    assert outputs['centerness'].shape == (2, expected_points)
    assert outputs['bboxes'].shape == (2, expected_points, 4)
    assert outputs['polygons'].shape == (2, expected_points, 36, 2)
    # the images differ, so the batch dimension is not broadcast from one image
    assert abs(outputs['scores'][0] - outputs['scores'][1]).max() > 1e-3
    polygons = outputs['polygons']
    assert polygons[..., 0].max() <= shape[1] - 1 and polygons[..., 1].max() <= shape[0] - 1
    assert polygons.min() >= 0 and polygons.std() > 1.0
    for name, (diff, tolerance) in compare_outputs(outputs, reference).items():
        assert diff <= tolerance, f'{name}: max abs diff {diff} > {tolerance}'


def test_outputs_plus_postprocess_equal_predict(exported):
    """Decoding in the graph + NMS outside == PolarMask.predict, at a size not divisible by 32."""
    model, wrapper, _ = exported
    height, width = 200, 296
    images = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8)
    scale_factor = (0.5, 0.8)
    metainfo = dict(img_shape=(height, width), ori_shape=(400, 370), scale_factor=scale_factor)
    data = dict(
        inputs=list(images), data_samples=[DetDataSample(metainfo=metainfo) for _ in range(2)]
    )
    test_cfg = dict(model.bbox_head.test_cfg, nms_pre=60)
    model.bbox_head.test_cfg.update(test_cfg)
    with torch.no_grad():
        predictions = model.test_step(data)
        outputs = wrapper(images.float())
    img_metas = [sample.metainfo for sample in predictions]
    results = postprocess_outputs(
        model.bbox_head, outputs, (height, width), 32, img_metas, cfg=test_cfg, rescale=True
    )
    for sample, result in zip(predictions, results, strict=True):
        expected = sample.pred_instances
        assert len(expected) > 5
        assert torch.equal(result.labels, expected.labels)
        torch.testing.assert_close(result.scores, expected.scores)
        torch.testing.assert_close(result.bboxes, expected.bboxes)
        torch.testing.assert_close(result.polygons, expected.polygons)


def test_metadata_names_the_decoding(exported):
    _, _, path = exported
    model_proto = onnx.load(path)
    props = {prop.key: prop.value for prop in model_proto.metadata_props}
    info = json.loads(props['polarmask'])
    assert info['num_rays'] == 36 and info['strides'] == list(STRIDES)
    assert info['angle_convention'] == 'current' and info['num_classes'] == 6
    assert [output.name for output in model_proto.graph.output] == list(OUTPUT_NAMES)
    batch_dim = model_proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == 'batch'


def test_command_line_static_export_with_verify(tmp_path, capsys):
    model = demo_model()
    checkpoint = tmp_path / 'demo.pth'
    torch.save(
        dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=list('abcdef')))),
        checkpoint,
    )
    out = tmp_path / 'static.onnx'
    argv = [DEMO, str(checkpoint), '--out', str(out), '--shape', '96', '128', '--verify']
    assert pytorch2onnx.main(argv) == 0
    printed = capsys.readouterr().out
    assert 'NMS is not in the graph' in printed and 'onnxruntime matches PyTorch' in printed
    assert 'verify input (1, 3, 96, 128)' in printed
    graph_input = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [dim.dim_value for dim in graph_input] == [1, 3, 96, 128]
    props = {prop.key: prop.value for prop in onnx.load(str(out)).metadata_props}
    assert json.loads(props['polarmask'])['classes'] == list('abcdef')


@pytest.mark.parametrize(
    ('name', 'expected'),
    [
        ('seven_classes.pth', ['trained for 7 classes', 'model.bbox_head.num_classes=7']),
        ('original.pth', ['original PolarMask code', 'polarmask_original_to_ours.py']),
    ],
)
def test_checkpoint_of_another_model_is_init_detectors_error(tmp_path, capsys, name, expected):
    checkpoint = tmp_path / name
    state_dict = demo_model().state_dict()
    if name == 'seven_classes.pth':
        state_dict['bbox_head.polar_cls.weight'] = torch.zeros(7, 64, 3, 3)
        state_dict['bbox_head.polar_cls.bias'] = torch.zeros(7)
    else:
        state_dict['bbox_head.fcos_cls.weight'] = state_dict.pop('bbox_head.polar_cls.weight')
    torch.save(dict(state_dict=state_dict), checkpoint)
    with pytest.raises(SystemExit) as exit_info:
        pytorch2onnx.main([DEMO, str(checkpoint), '--out', str(tmp_path / 'x.onnx')])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert f'ValueError: checkpoint {str(checkpoint)!r}' in error
    assert all(part in error for part in expected), error
    assert not (tmp_path / 'x.onnx').exists()


def test_deformable_convolutions_are_refused_naming_the_layer(tmp_path):
    cfg = tiny_model_cfg()
    cfg['bbox_head']['use_dcn'] = True
    model = MODELS.build(cfg).eval()
    with pytest.raises(ValueError, match=r"deformable convolutions \(e.g. 'bbox_head.cls_convs.0'"):
        export_onnx(model, str(tmp_path / 'dcn.onnx'), (64, 64))
    assert not (tmp_path / 'dcn.onnx').exists()

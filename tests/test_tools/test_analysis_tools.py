"""tools/analysis_tools: analyze_logs (plot_curve, cal_train_time), benchmark and get_flops."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from polarmask.datasets.shapes_generator import make_shapes_dataset

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / 'configs/polarmask/demo/polar_shapes_r18.py')


def load_tool(name: str):
    path = ROOT / 'tools' / 'analysis_tools' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'analysis_tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


analyze_logs = load_tool('analyze_logs')
benchmark = load_tool('benchmark')
get_flops = load_tool('get_flops')


def write_log(path: Path, epoch_times: list[list[float]], maps: list[float]) -> Path:
    """A scalars log laid out as mmengine's LocalVisBackend writes it (epoch-based loop)."""
    lines, step = [], 0
    for epoch, (times, segm_map) in enumerate(zip(epoch_times, maps, strict=True), start=1):
        for time in times:
            step += 1
            lines.append(
                dict(
                    lr=1e-3,
                    data_time=0.01,
                    loss=10.0 / step,
                    loss_mask=3.0 / step,
                    time=time,
                    epoch=epoch,
                    iter=step,
                    step=step,
                )
            )
        lines.append(
            {
                'coco/segm_mAP': segm_map,
                'coco/segm_mAP_50': 2 * segm_map,
                'data_time': 0.02,
                'time': 0.5,
                'step': epoch,
            }
        )
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    return path


@pytest.fixture
def logs(tmp_path):
    first = write_log(tmp_path / 'a.json', [[5.0, 1.0, 1.0], [4.0, 2.0, 2.0]], [0.1, 0.3])
    second = write_log(tmp_path / 'b.json', [[3.0, 1.5], [3.0, 2.5]], [0.2, 0.25])
    return first, second


def test_plot_curve_writes_png_with_prefixless_keys(logs, tmp_path, capsys):
    out = tmp_path / 'curve.png'
    argv = [
        'plot_curve',
        *map(str, logs),
        '--keys',
        'loss',
        'segm_mAP',
        '--out',
        str(out),
        '--legend',
        'a_loss',
        'a_map',
        'b_loss',
        'b_map',
        '--title',
        'demo',
    ]
    assert analyze_logs.main(argv) == 0
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 10_000
    assert f'save curve to: {out}' in capsys.readouterr().out


def test_log_split_and_key_resolution(logs):
    records = analyze_logs.load_json_log(str(logs[0]))
    assert len(records['train']) == 6 and len(records['val']) == 2
    assert analyze_logs.resolve_key(records, 'segm_mAP', 'a') == ('val', 'coco/segm_mAP')
    assert analyze_logs.resolve_key(records, 'coco/segm_mAP_50', 'a')[1] == 'coco/segm_mAP_50'
    assert analyze_logs.resolve_key(records, 'time', 'a') == ('train', 'time')
    xs, ys = analyze_logs.curve(records, 'val', 'coco/segm_mAP')
    assert xs.tolist() == [1, 2] and ys.tolist() == [0.1, 0.3]
    xs, _ = analyze_logs.curve(records, 'train', 'loss')
    assert xs.tolist() == [1, 2, 3, 4, 5, 6]


def test_missing_key_lists_available_keys(logs, tmp_path, capsys):
    records = analyze_logs.load_json_log(str(logs[0]))
    pattern = r"no key 'bbox_mAP'.*train: .*loss_mask.*val: coco/segm_mAP"
    with pytest.raises(LookupError, match=pattern):
        analyze_logs.resolve_key(records, 'bbox_mAP', str(logs[0]))
    argv = ['plot_curve', str(logs[0]), '--keys', 'bbox_mAP', '--out', str(tmp_path / 'x.png')]
    with pytest.raises(SystemExit) as exit_info:
        analyze_logs.main(argv)
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert 'a.json' in error and 'Available keys' in error and 'coco/segm_mAP' in error
    assert not (tmp_path / 'x.png').exists()


def test_text_log_is_rejected_with_the_line(tmp_path):
    text_log = tmp_path / 'run.log'
    text_log.write_text('{"loss": 1.0, "iter": 1}\n11/29 04:30:57 - mmengine - INFO - Epoch\n')
    with pytest.raises(ValueError, match=r'run\.log:2: not a json record'):
        analyze_logs.load_json_log(str(text_log))


def test_cal_train_time_numbers(logs, capsys):
    assert analyze_logs.main(['cal_train_time', str(logs[0])]) == 0
    out = capsys.readouterr().out
    # the first record of each epoch (5.0 and 4.0) is an outlier and left out
    assert 'slowest epoch 2, average time is 2.0000 s/iter' in out
    assert 'fastest epoch 1, average time is 1.0000 s/iter' in out
    assert 'time std over epochs is 0.5000' in out
    assert 'average iter time: 1.5000 s/iter' in out
    records = analyze_logs.load_json_log(str(logs[0]))
    stats = analyze_logs.train_time_stats(records, include_outliers=True)
    assert stats['epoch_means'] == pytest.approx([7 / 3, 8 / 3])


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench') / 'shapes'
    make_shapes_dataset(root, num_train=0, num_val=3)
    return root


def _fps(output: str) -> float:
    return float(re.search(r'Overall fps: ([\d.]+) img / s', output).group(1))


def test_benchmark_inference_three_iterations(shapes_root, capsys):
    argv = [
        DEMO,
        '--task',
        'inference',
        '--max-iter',
        '3',
        '--num-warmup',
        '1',
        '--log-interval',
        '1',
        '--fuse-conv-bn',
        '--cfg-options',
        f'test_dataloader.dataset.data_root={shapes_root}/',
    ]
    assert benchmark.main(argv) == 0
    out = capsys.readouterr().out
    assert re.findall(r'Done image \[(\d+) */3\]', out) == ['2', '3']
    assert _fps(out) > 0


def test_benchmark_dataloader_three_iterations(shapes_root, capsys):
    argv = [
        DEMO,
        '--task',
        'dataloader',
        '--max-iter',
        '3',
        '--num-warmup',
        '1',
        '--log-interval',
        '1',
        '--repeat-num',
        '2',
        '--cfg-options',
        f'test_dataloader.dataset.data_root={shapes_root}/',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'test_dataloader.batch_size=2',
    ]
    assert benchmark.main(argv) == 0
    out = capsys.readouterr().out
    # 3 images, batches of 2: the third batch starts the dataset over
    assert len(re.findall(r'Done batch \[\d+ */3\]', out)) == 4
    assert re.search(r'Overall fps: \[[\d.]+, [\d.]+\]\[[\d.]+\] img / s', out)


def test_benchmark_rejects_warmup_longer_than_run():
    with pytest.raises(SystemExit):
        benchmark.parse_args([DEMO, '--max-iter', '5', '--num-warmup', '5'])


def test_get_flops_plausible_and_scales_with_shape(capsys):
    args = get_flops.parse_args([DEMO])
    cfg = get_flops.load_config(DEMO)
    width, height = cfg.test_dataloader.dataset.pipeline[1].scale
    divisor = cfg.model.data_preprocessor.pad_size_divisor
    padded = (-(-height // divisor) * divisor, -(-width // divisor) * divisor)
    assert get_flops.padded_shape(args, cfg) == ((height, width), padded)
    small = get_flops.count(get_flops.parse_args([DEMO, '--shape', '250', '250']))
    assert small['padded_shape'] == (256, 256)
    # The demo's quarter-width ResNet-18 without its last stage (under a sixteenth of ResNet-18's
    # 2.4 GFLOPs, multiply-adds, at 256 x 256), the 64-channel FPN and the head's two 2-conv
    # towers (no box branch) on the 1280 points of P3 and P4: about 0.42 G; 0.18 M + 0.08 M +
    # 0.17 M parameters (0.52 G and 0.51 M with the box branch).
    assert 0.35e9 < small['flops'] < 0.5e9
    assert 0.38e6 < small['params'] < 0.48e6
    assert get_flops.main([DEMO, '--shape', '320']) == 0
    out = capsys.readouterr().out
    assert 'Input shape: (320, 320)' in out and 'bbox_head.polar_mask' in out
    large_flops = float(re.search(r'Flops: ([\d.]+)G', out).group(1)) * 1e9
    assert large_flops / small['flops'] == pytest.approx(320**2 / 256**2, rel=0.01)

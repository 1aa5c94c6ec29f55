"""tools/model_converters/publish_model.py: weights + meta only, sha256-suffixed, atomic."""

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub

from polarmask.apis import PolarMaskInferencer, inference_detector, init_detector
from polarmask.engine.checkpoint import make_checkpoint_plain
from tests.test_apis.demo_model import CONFIG as DEMO_CONFIG
from tests.test_apis.demo_model import write_demo_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'model_converters' / 'publish_model.py'

spec = importlib.util.spec_from_file_location('publish_model', TOOL)
publish_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(publish_model)


@pytest.fixture
def runner_checkpoint(tmp_path):
    """A checkpoint laid out as PolarRunner saves it: weights, meta and the training state."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    hub = MessageHub.get_instance('publish_model_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', 1.25)
    checkpoint = dict(
        meta=dict(
            epoch=2,
            iter=8,
            cfg="model = dict(type='PolarMask')",
            dataset_meta=dict(classes=('ellipse', 'star')),
            message_hub=hub.state_dict(),
        ),
        state_dict=model.state_dict(),
        message_hub=hub.state_dict(),
        optimizer=optimizer.state_dict(),
        param_schedulers=[dict(last_epoch=2, base_lrs=[1e-3])],
    )
    make_checkpoint_plain(checkpoint)
    path = tmp_path / 'epoch_2.pth'
    torch.save(checkpoint, path)
    return path, model.state_dict()


def test_published_file_is_named_by_its_hash_and_loads_weights_only(runner_checkpoint, tmp_path):
    in_file, state_dict = runner_checkpoint
    out_dir = tmp_path / 'publish'
    final, sha256, dropped = publish_model.process_checkpoint(
        str(in_file), str(out_dir / 'polar_r18.pth')
    )
    match = re.fullmatch(r'polar_r18-([0-9a-f]{8})\.pth', os.path.basename(final))
    assert match is not None, final
    content_hash = hashlib.sha256(Path(final).read_bytes()).hexdigest()
    assert content_hash == sha256 and match.group(1) == content_hash[:8]
    assert os.listdir(out_dir) == [os.path.basename(final)]  # no temporary file left

    published = torch.load(final, weights_only=True)
    assert set(published) == {'meta', 'state_dict'}
    assert set(dropped) == {'message_hub', 'optimizer', 'param_schedulers', 'meta.message_hub'}
    assert 'message_hub' not in published['meta']
    assert published['meta']['dataset_meta']['classes'] == ['ellipse', 'star'] or published['meta'][
        'dataset_meta'
    ]['classes'] == ('ellipse', 'star')
    assert published['meta']['cfg'].startswith('model =')
    assert published['state_dict'].keys() == state_dict.keys()
    for key, value in state_dict.items():
        assert torch.equal(published['state_dict'][key], value)
    assert os.path.getsize(final) < os.path.getsize(in_file)


def test_publishing_is_deterministic_and_keeps_non_pth_names(runner_checkpoint, tmp_path):
    in_file, _ = runner_checkpoint
    first = publish_model.process_checkpoint(str(in_file), str(tmp_path / 'a' / 'model.pth'))
    second = publish_model.process_checkpoint(str(in_file), str(tmp_path / 'b' / 'model.pth'))
    assert os.path.basename(first[0]) == os.path.basename(second[0])
    plain = publish_model.process_checkpoint(str(in_file), str(tmp_path / 'c' / 'model'))
    assert re.fullmatch(r'model-[0-9a-f]{8}\.pth', os.path.basename(plain[0]))


def test_save_keys_and_missing_state_dict(tmp_path):
    path = tmp_path / 'weights_only.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict={'w': torch.ones(2)}), path)
    final, _, dropped = publish_model.process_checkpoint(
        str(path), str(tmp_path / 'out.pth'), save_keys=['state_dict']
    )
    assert dropped == ['meta'] and set(torch.load(final, weights_only=True)) == {'state_dict'}
    bare = tmp_path / 'bare.pth'
    torch.save({'w': torch.ones(2)}, bare)
    with pytest.raises(KeyError, match='bare.pth.*has no "state_dict"'):
        publish_model.process_checkpoint(str(bare), str(tmp_path / 'out.pth'))


def test_command_line(runner_checkpoint, tmp_path):
    in_file, _ = runner_checkpoint
    run = subprocess.run(
        [sys.executable, str(TOOL), str(in_file), str(tmp_path / 'cli.pth')],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert 'removed: message_hub, optimizer, param_schedulers' in run.stdout
    assert re.search(r'published .*cli-[0-9a-f]{8}\.pth', run.stdout)


def test_missing_input_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        publish_model.main([str(tmp_path / 'nope.pth'), str(tmp_path / 'x.pth')])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert 'nope.pth' in error and 'does not exist' in error
    assert not list(tmp_path.iterdir())


def test_config_embedded_with_config_makes_the_published_file_enough(tmp_path):
    checkpoint = write_demo_checkpoint(tmp_path / 'converted.pth')  # weights without a config
    final, _, _ = publish_model.process_checkpoint(
        str(checkpoint), str(tmp_path / 'pub' / 'demo.pth'), config=DEMO_CONFIG
    )
    published = torch.load(final, weights_only=True)
    assert Config.fromstring(published['meta']['cfg'], '.py').model.bbox_head.num_classes == 6
    img = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    expected = inference_detector(init_detector(DEMO_CONFIG, checkpoint), img)
    alone = PolarMaskInferencer(final, show_progress=False)(img)['predictions'][0]
    np.testing.assert_array_equal(alone.bboxes, expected.bboxes)
    assert alone.masks == expected.masks and alone.classes == expected.classes


def test_a_config_the_weights_do_not_fit_is_refused(tmp_path):
    checkpoint = write_demo_checkpoint(tmp_path / 'converted.pth')
    other = tmp_path / 'three_classes.py'
    other.write_text(
        f"_base_ = '{ROOT / DEMO_CONFIG}'\nmodel = dict(bbox_head=dict(num_classes=3))\n"
    )
    with pytest.raises(ValueError, match=r'trained for 6 classes .* builds a head for 3'):
        publish_model.process_checkpoint(
            str(checkpoint), str(tmp_path / 'pub' / 'x.pth'), config=str(other)
        )
    assert not (tmp_path / 'pub').exists()


def test_publishing_without_a_config_says_so(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(publish_model, 'print_log', lambda message, **kw: logged.append(message))
    checkpoint = write_demo_checkpoint(tmp_path / 'converted.pth')
    publish_model.process_checkpoint(str(checkpoint), str(tmp_path / 'x.pth'))
    assert len(logged) == 1 and "carries no config (meta['cfg'])" in logged[0]
    assert '--config CONFIG' in logged[0]

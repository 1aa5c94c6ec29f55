"""CheckInvalidLossHook stops training at a non-finite loss and says where it happened."""

from types import SimpleNamespace

import pytest
import torch

from polarmask.engine import CheckInvalidLossHook
from polarmask.structures import DetDataSample


def _batch() -> dict:
    samples = [DetDataSample(metainfo=dict(img_path=f'img_{i}.jpg', img_id=i)) for i in range(2)]
    return dict(inputs=[torch.zeros(3, 8, 8)] * 2, data_samples=samples)


def _outputs(loss_mask: float) -> dict:
    """Log variables as ``BaseModel.train_step`` returns them: scalar tensors."""
    values = dict(loss_cls=torch.tensor(0.5), loss_mask=torch.tensor(loss_mask))
    return dict(loss=sum(values.values()), **values)


def test_non_finite_loss_names_iteration_epoch_losses_and_images():
    runner = SimpleNamespace(iter=6, epoch=1)
    with pytest.raises(FloatingPointError) as error:
        CheckInvalidLossHook().after_train_iter(runner, 2, _batch(), _outputs(float('nan')))
    message = str(error.value)
    assert message.startswith('non-finite loss at iteration 7 (epoch 2): loss=nan, loss_mask=nan')
    assert "['img_0.jpg', 'img_1.jpg']" in message and 'lower the learning rate' in message
    assert 'loss_cls' not in message


def test_finite_losses_and_skipped_iterations_pass():
    hook = CheckInvalidLossHook(interval=2)
    hook.after_train_iter(SimpleNamespace(iter=1, epoch=0), 1, _batch(), _outputs(1.0))
    hook.after_train_iter(SimpleNamespace(iter=0, epoch=0), 0, _batch(), _outputs(float('inf')))
    with pytest.raises(FloatingPointError, match='loss_mask=inf'):
        hook.after_train_iter(SimpleNamespace(iter=1, epoch=0), 1, _batch(), _outputs(float('inf')))

"""Hook that draws predictions during validation and testing (``tools/test.py --show-dir``)."""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence

import mmcv
import numpy as np
from mmengine.fileio import get
from mmengine.hooks import Hook

from polarmask.registry import HOOKS
from polarmask.structures import DetDataSample
from polarmask.visualization.draw import draw_det_instances


@HOOKS.register_module()
class DetVisualizationHook(Hook):
    """Draw predicted polygons on the original images.

    In testing, every image is drawn (on every rank) and written to
    ``<work_dir>/<timestamp>/<test_out_dir>/<image file name>.png`` (``a.jpg.png``: the extension
    stays, so ``a.jpg`` and ``a.png`` do not overwrite each other), or sent to the runner's vis
    backends when ``test_out_dir`` is None. In validation, the first image of every
    ``interval``-th batch goes to the vis backends. Class names come from the runner visualizer's
    ``dataset_meta``, which mmengine's val/test loops set from the dataset.

    Args:
        draw: Draw at all (``tools/test.py --show-dir`` sets it).
        interval: Validation drawing interval in iterations.
        score_thr: Minimum score of drawn predictions.
        show: Also show each drawing in an OpenCV window.
        wait_time: Seconds to show each drawing.
        test_out_dir: Output folder of the test drawings, relative to
            ``<work_dir>/<timestamp>`` unless absolute.
        backend_args: mmengine file-backend arguments for reading the images.
    """

    priority = 'NORMAL'

    def __init__(
        self,
        draw: bool = False,
        interval: int = 1,
        score_thr: float = 0.3,
        show: bool = False,
        wait_time: float = 0.0,
        test_out_dir: str | None = None,
        backend_args: dict | None = None,
    ) -> None:
        if interval < 1:
            raise ValueError(f'DetVisualizationHook: interval must be >= 1, got {interval}')
        self.draw = draw
        self.interval = interval
        self.score_thr = score_thr
        self.show = show
        self.wait_time = wait_time
        self.test_out_dir = test_out_dir
        self.backend_args = backend_args
        self._test_index = 0

    def _draw(self, runner, data_sample: DetDataSample) -> np.ndarray:
        """The sample's original image with its predictions, (H, W, 3) uint8 BGR."""
        img = mmcv.imfrombytes(get(data_sample.img_path, backend_args=self.backend_args))
        pred = data_sample.pred_instances.cpu()
        meta = runner.visualizer.dataset_meta or {}
        drawn = draw_det_instances(
            img,
            pred.polygons,
            pred.labels,
            scores=pred.scores,
            class_names=meta.get('classes'),
            palette=meta.get('palette'),
            score_thr=self.score_thr,
        )
        if self.show:
            mmcv.imshow(
                drawn,
                win_name=osp.basename(data_sample.img_path),
                wait_time=int(self.wait_time * 1000),
            )
        return drawn

    def after_val_iter(
        self,
        runner,
        batch_idx: int,
        data_batch: dict | None = None,
        outputs: Sequence[DetDataSample] | None = None,
    ) -> None:
        """Send the first image of every ``interval``-th batch to the vis backends."""
        if not self.draw or not outputs:
            return
        step = runner.iter + batch_idx
        if step % self.interval:
            return
        drawn = self._draw(runner, outputs[0])
        runner.visualizer.add_image(
            f'val_{osp.basename(outputs[0].img_path)}', mmcv.bgr2rgb(drawn), step=step
        )

    def after_test_iter(
        self,
        runner,
        batch_idx: int,
        data_batch: dict | None = None,
        outputs: Sequence[DetDataSample] | None = None,
    ) -> None:
        """Draw every test image to ``test_out_dir`` (or the vis backends)."""
        if not self.draw or not outputs:
            return
        out_dir = None
        if self.test_out_dir is not None:
            out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
            os.makedirs(out_dir, exist_ok=True)
        for data_sample in outputs:
            self._test_index += 1
            drawn = self._draw(runner, data_sample)
            if out_dir is not None:
                name = osp.basename(data_sample.img_path)
                mmcv.imwrite(drawn, osp.join(out_dir, f'{name}.png'))
            else:
                runner.visualizer.add_image('test_img', mmcv.bgr2rgb(drawn), step=self._test_index)

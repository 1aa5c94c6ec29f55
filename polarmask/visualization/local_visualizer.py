"""mmengine visualizer that draws PolarMask data samples with OpenCV."""

from __future__ import annotations

import mmcv
import numpy as np
from mmengine.dist import master_only
from mmengine.visualization import Visualizer

from polarmask.registry import VISUALIZERS
from polarmask.structures import DetDataSample
from polarmask.visualization.draw import draw_det_instances, draw_gt_instances


@VISUALIZERS.register_module()
class PolarVisualizer(Visualizer):
    """Draw ground truth and predictions of a :class:`DetDataSample` side by side.

    Class names come from ``dataset_meta['classes']`` (set by mmengine's val/test loops), colours
    from ``dataset_meta['palette']`` when present.

    Args:
        name: Instance name (mmengine's ``ManagerMixin``).
        alpha: Opacity of predicted masks.
        **kwargs: :class:`mmengine.visualization.Visualizer` arguments (``vis_backends``,
            ``save_dir``, ...).
    """

    def __init__(self, name: str = 'visualizer', alpha: float = 0.5, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.alpha = alpha

    def draw_sample(
        self,
        image: np.ndarray,
        data_sample: DetDataSample,
        draw_gt: bool = True,
        draw_pred: bool = True,
        pred_score_thr: float = 0.3,
    ) -> np.ndarray:
        """Drawn (H, W', 3) BGR image: gt panel and/or prediction panel, side by side.

        ``image`` must be in the coordinates of what is drawn: the original image for predictions
        rescaled to it (``rescale=True``), the network input for ground truth from the pipeline.
        """
        meta = self.dataset_meta or {}
        class_names, palette = meta.get('classes'), meta.get('palette')
        panels = []
        if draw_gt and 'gt_instances' in data_sample:
            gt = data_sample.gt_instances
            if 'contours' in gt:
                panels.append(
                    draw_gt_instances(
                        image,
                        gt.contours,
                        gt.labels,
                        centers=gt.get('centers'),
                        bboxes=gt.get('bboxes'),
                        class_names=class_names,
                        palette=palette,
                    )
                )
        if draw_pred and 'pred_instances' in data_sample:
            pred = data_sample.pred_instances
            panels.append(
                draw_det_instances(
                    image,
                    pred.polygons,
                    pred.labels,
                    scores=pred.scores,
                    class_names=class_names,
                    palette=palette,
                    score_thr=pred_score_thr,
                    alpha=self.alpha,
                )
            )
        if not panels:
            return image.copy()
        return np.concatenate(panels, axis=1)

    @master_only
    def add_datasample(
        self,
        name: str,
        image: np.ndarray,
        data_sample: DetDataSample | None = None,
        draw_gt: bool = True,
        draw_pred: bool = True,
        show: bool = False,
        wait_time: float = 0,
        out_file: str | None = None,
        pred_score_thr: float = 0.3,
        step: int = 0,
    ) -> None:
        """Draw a sample; write it to ``out_file`` and/or the vis backends, or show it.

        Args:
            name: Image identifier for the backends.
            image: (H, W, 3) uint8 BGR image.
            data_sample: Sample with ``gt_instances`` and/or ``pred_instances``.
            draw_gt: Draw ground-truth contours.
            draw_pred: Draw predicted polygons.
            show: Show in an OpenCV window.
            wait_time: Seconds to wait when showing.
            out_file: Write the drawing there (then not to the backends).
            pred_score_thr: Minimum score of drawn predictions.
            step: Global step for the backends.
        """
        drawn = (
            image.copy()
            if data_sample is None
            else self.draw_sample(image, data_sample.cpu(), draw_gt, draw_pred, pred_score_thr)
        )
        if show:
            mmcv.imshow(drawn, win_name=name, wait_time=int(wait_time * 1000))
        if out_file is not None:
            mmcv.imwrite(drawn, out_file)
        else:
            self.add_image(name, mmcv.bgr2rgb(drawn), step)

"""``--out res.pkl``: save the raw predictions of every image for offline analysis."""

from __future__ import annotations

import os
import os.path as osp
import pickle
from collections.abc import Sequence
from typing import Any

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from polarmask.registry import METRICS
from polarmask.structures import pred_instances_to_numpy


@METRICS.register_module()
class DumpDetResults(BaseMetric):
    """Pickle the predictions of all images (gathered from all ranks) to ``out_file_path``.

    The file holds a list with one dict per image: ``img_id``, ``img_path`` (the image file as
    the dataset gave it, None for an image given as an array), ``ori_shape`` (H, W), ``bboxes``
    float32 (n, 4) x1y1x2y2, ``scores`` float32 (n,), ``labels`` int64 (n,), ``polygons`` float32
    (n, R, 2) xy and ``masks`` (n compressed RLE dicts with ``str`` counts), all in original-image
    pixels: what the analysis tools (``eval_metric.py``, ``analyze_results.py``,
    ``confusion_matrix.py``) read instead of running the model. Files written before
    ``img_path`` was added lack it. The file is written to a temporary file next to the target
    and then renamed, so an interrupted run never leaves a truncated pickle.

    Args:
        out_file_path: Output path, ending in ``.pkl`` or ``.pickle``.
        collect_device: ``'cpu'`` or ``'gpu'``, how mmengine gathers results across ranks.
    """

    def __init__(self, out_file_path: str, collect_device: str = 'cpu') -> None:
        super().__init__(collect_device=collect_device)
        if not out_file_path.endswith(('.pkl', '.pickle')):
            raise ValueError(
                f"DumpDetResults: out_file_path '{out_file_path}' must end in .pkl or .pickle"
            )
        self.out_file_path = out_file_path

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each image's predictions as numpy arrays plus RLE masks."""
        for sample in data_samples:
            shape = tuple(int(v) for v in sample['ori_shape'])
            result = pred_instances_to_numpy(sample['pred_instances'], shape)
            self.results.append(
                dict(
                    img_id=int(sample['img_id']),
                    img_path=sample.get('img_path'),
                    ori_shape=shape,
                    **result,
                )
            )

    def compute_metrics(self, results: list) -> dict:
        """Write the pickle atomically; no metrics."""
        directory = osp.dirname(osp.abspath(self.out_file_path))
        os.makedirs(directory, exist_ok=True)
        tmp_path = f'{self.out_file_path}.tmp{os.getpid()}'
        with open(tmp_path, 'wb') as f:
            pickle.dump(results, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp_path, self.out_file_path)
        print_log(
            f"DumpDetResults: {len(results)} images' results saved to '{self.out_file_path}'",
            logger='current',
        )
        return {}

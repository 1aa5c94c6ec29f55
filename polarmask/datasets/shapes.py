"""The embedded demo dataset: the generated shapes data, loaded as COCO and generated on first use.

:class:`ShapesDataset` is :class:`~polarmask.datasets.coco.CocoInsSegDataset` that generates the
data (:func:`~polarmask.datasets.shapes_generator.make_shapes_dataset`) into ``data_root`` the
first time it finds the annotation file missing.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from mmengine.dist import barrier, get_dist_info
from mmengine.logging import print_log

from polarmask.datasets.coco import CocoInsSegDataset
from polarmask.datasets.shapes_generator import (
    SHAPES_CLASSES,
    generator_differences,
    make_shapes_dataset,
)
from polarmask.registry import DATASETS


@DATASETS.register_module()
class ShapesDataset(CocoInsSegDataset):
    """:class:`CocoInsSegDataset` over the shapes demo data, generated on first use.

    Args:
        generate_if_missing: When ``ann_file`` does not exist, generate the dataset into
            ``data_root`` with :func:`make_shapes_dataset` first. In distributed runs rank 0
            generates while the other ranks wait at a barrier; a rank that still misses the data
            then (a node without a shared file system) generates the same data itself.
        generator_cfg: Keyword arguments of :func:`make_shapes_dataset` (``num_train``,
            ``num_val``, ``seed``, ...).
        **kwargs: Arguments of :class:`CocoInsSegDataset` (``ann_file``, ``data_root``,
            ``data_prefix``, ``metainfo``, ``filter_cfg``, ``pipeline``, ``test_mode``, ...).
    """

    METAINFO: dict = dict(classes=SHAPES_CLASSES)

    def __init__(
        self,
        *args: Any,
        generate_if_missing: bool = True,
        generator_cfg: dict | None = None,
        **kwargs: Any,
    ) -> None:
        self.generate_if_missing = generate_if_missing
        self.generator_cfg = dict(generator_cfg or {})
        super().__init__(*args, **kwargs)

    def full_init(self) -> None:
        """Generate the data if needed, then load it as :class:`CocoInsSegDataset` does."""
        if not self._fully_initialized and self.generate_if_missing:
            self._generate_if_missing()
        super().full_init()

    def _generate_if_missing(self) -> None:
        if os.path.isfile(self.ann_file):
            return
        if not self.data_root:
            raise ValueError(
                f"ShapesDataset: annotation file '{self.ann_file}' is missing and data_root is not "
                'set: set data_root to the folder to generate the dataset into'
            )
        rank, world_size = get_dist_info()
        if rank == 0:
            self._generate()
        if world_size > 1:
            barrier()
            if not os.path.isfile(self.ann_file):
                self._generate()
        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(
                f"ShapesDataset: '{self.ann_file}' is still missing after generating into "
                f"'{self.data_root}', which writes annotations/instances_{{train,val}}.json: "
                'point ann_file at one of them'
            )

    def _load_json(self) -> dict:
        """The annotation json, with a warning when it was generated with other settings."""
        raw = super()._load_json()
        differences = generator_differences(raw, self.generator_cfg)
        if differences:
            print_log(
                f"ShapesDataset: '{self.ann_file}' was generated with {', '.join(differences)}: "
                f"delete '{self.data_root}' to regenerate it with this config's settings, or "
                'set generator_cfg to match it',
                logger='current',
                level=logging.WARNING,
            )
        return raw

    def _generate(self) -> None:
        print_log(
            f"ShapesDataset: '{self.ann_file}' is missing; generating the shapes dataset into "
            f"'{self.data_root}' with {self.generator_cfg or 'the default settings'}",
            logger='current',
        )
        summary = make_shapes_dataset(self.data_root, **self.generator_cfg)
        print_log(
            f'ShapesDataset: wrote {summary["num_images"]} images with '
            f"{summary['num_instances']} instances to '{summary['root']}'",
            logger='current',
        )

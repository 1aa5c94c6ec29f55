"""Stages of the GPU check that run the detector: inference end to end, and training speed.

Both build the model of ``--config`` (the seed R-50 config by default) with random weights and
feed it synthetic images of ``--image-size`` (H, W): no dataset or checkpoint is needed.
Naming convention for shapes: N images per batch, H x W the image and network input.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from unittest import mock

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from torch import nn

import polarmask.apis.inference as inference_api
import polarmask.models.layers.nms as polygon_nms_module
from benchmarks import polar_targets as targets_benchmark
from benchmarks.gpu.context import StageContext
from benchmarks.gpu.stages import device_setting, require_device, synchronize
from polarmask.apis import inference_detector, init_detector
from polarmask.engine.cli import build_train_parser, config_for_training
from polarmask.registry import MODELS
from polarmask.structures import DetDataSample
from polarmask.utils import register_all_modules
from polarmask.utils.config import config_input_shape, load_config
from tests.oracles.random_instances import random_instances

PRECISIONS = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
TRAIN_LR = 1e-4
"""Learning rate of the timed training: random data cannot make it diverge; speed is the same."""
TRAIN_BATCHES = 4
"""Distinct synthetic batches, cycled through during training."""
MIN_TIMED_CALLS = 2
"""Timed iterations or inference calls, even past the stage's plan."""
SPLIT_CALLS = 2
"""Inference calls timed piece by piece (with a synchronisation around every piece)."""


def _not_a_frozen_parameter_note(record: logging.LogRecord) -> bool:
    return 'is skipped since its requires_grad=False' not in record.getMessage()


def quiet_mmengine() -> None:
    """Keep mmengine's warnings, without its per-parameter lines about the optimizer's groups."""
    logger = MMLogger.get_current_instance()
    logger.setLevel(logging.WARNING)
    logger.addFilter(_not_a_frozen_parameter_note)


def parse_variant(name: str) -> tuple[str, bool]:
    """'bf16-cl' -> ('bf16', True): the precision and whether the model is channels_last."""
    precision, _, layout = name.partition('-')
    if precision not in PRECISIONS or layout not in ('', 'cl'):
        raise ValueError(
            f'training variant {name!r}: use a precision of {tuple(PRECISIONS)}, optionally '
            "followed by '-cl' (channels_last), e.g. bf16-cl"
        )
    return precision, layout == 'cl'


def with_input_size(cfg: Config, image_size: tuple[int, int]) -> Config:
    """The config with its test pipeline resizing every image to ``image_size`` (H, W).

    Raises:
        ValueError: the test pipeline has no ``Resize`` to set.
    """
    height, width = image_size
    for transform in cfg.test_dataloader.dataset.pipeline:
        if transform['type'] == 'Resize':
            transform.update(scale=(width, height), keep_ratio=False)
    if config_input_shape(cfg) != (height, width):
        raise ValueError(
            f'{cfg.filename}: no Resize in test_dataloader.dataset.pipeline to set to {width}x'
            f'{height}; use a config whose test pipeline resizes'
        )
    return cfg


def synthetic_batches(
    image_size: tuple[int, int], batch_size: int, num_instances: int, num_classes: int, seed: int
) -> list[dict]:
    """``TRAIN_BATCHES`` batches as the training pipeline packs them, from random instances.

    Returns:
        list[dict]: per batch ``inputs``, N (3, H, W) uint8 noise images, and ``data_samples``
        with ``gt_instances`` (boxes, labels, contours, centres of ``num_instances`` random
        shapes) and the metainfo of an unresized image.
    """
    rng = np.random.default_rng(seed)
    height, width = image_size
    max_size = min(300.0, min(image_size) / 2)
    batches = []
    for _ in range(TRAIN_BATCHES):
        inputs, samples = [], []
        for index in range(batch_size):
            inputs.append(torch.from_numpy(rng.integers(0, 256, (3, height, width), np.uint8)))
            sample = DetDataSample(
                metainfo=dict(
                    img_id=index,
                    img_path=f'synthetic_{index}.jpg',
                    ori_shape=(height, width),
                    img_shape=(height, width),
                    scale_factor=(1.0, 1.0),
                )
            )
            sample.gt_instances = targets_benchmark.instances_of(
                *random_instances(rng, image_size, num_instances, num_classes, max_size=max_size)
            )
            samples.append(sample)
        batches.append(dict(inputs=inputs, data_samples=samples))
    return batches


def training_config(config: str, precision: str) -> Config:
    """The config that ``tools/train.py CONFIG [--amp] --cfg-options ...`` would run.

    ``--amp`` for fp16, plus ``optim_wrapper.dtype=bfloat16`` for bf16; the learning rate is
    ``TRAIN_LR`` and the backbone starts from random weights instead of a download.
    """
    options = [f'optim_wrapper.optimizer.lr={TRAIN_LR}', 'model.backbone.init_cfg=None']
    if precision == 'bf16':
        options.append('optim_wrapper.dtype=bfloat16')
    amp = ['--amp'] if precision != 'fp32' else []
    return config_for_training(
        build_train_parser().parse_args([config, *amp, '--cfg-options', *options])
    )


def time_training(
    cfg: Config,
    channels_last: bool,
    batches: list[dict],
    device: str,
    warmup: int,
    max_iters: int,
    stop_at: float,
) -> dict:
    """Train the config's model on ``batches`` with its optimizer wrapper and time the steps.

    Each step is ``model.train_step`` (data preprocessor, loss, backward, gradient clipping and
    the optimizer step, under autocast with an ``AmpOptimWrapper``).

    Args:
        cfg: a config from :func:`training_config`.
        channels_last: convert the model to the channels_last memory format.
        batches: from :func:`synthetic_batches`, cycled.
        device: 'cuda' or 'cpu'.
        warmup: untimed steps first.
        max_iters: timed steps at most.
        stop_at: ``time.perf_counter()`` after which no further step starts (after
            ``MIN_TIMED_CALLS`` timed ones).

    Returns:
        dict: ``iterations``, ``seconds``, ``images_per_s``, ``ms_per_iter``, ``peak_mib``
        (peak of ``torch.cuda.max_memory_allocated``; None on the CPU) and the last ``loss``.
    """
    gc.collect()  # the previous variant's model and optimizer, so the peak is this variant's
    if device == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.backends.cudnn.benchmark = bool(cfg.get('env_cfg', {}).get('cudnn_benchmark', False))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()

    def step(index: int) -> dict:
        return model.train_step(batches[index % len(batches)], optim_wrapper)

    for index in range(warmup):
        step(index)
    synchronize(device)
    start = time.perf_counter()
    iterations = 0
    while iterations < max_iters and (
        iterations < MIN_TIMED_CALLS or time.perf_counter() < stop_at
    ):
        log_vars = step(iterations)
        iterations += 1
    synchronize(device)
    seconds = time.perf_counter() - start
    images = iterations * len(batches[0]['inputs'])
    return dict(
        iterations=iterations,
        seconds=round(seconds, 2),
        images_per_s=images / seconds,
        ms_per_iter=seconds / iterations * 1e3,
        peak_mib=torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda' else None,
        loss=log_vars['loss'].item(),
    )


def train(context: StageContext) -> None:
    """Training speed and peak memory of ``--config`` per ``--train-variants``.

    Every variant starts from a fresh model and optimizer; its share of the stage's time is
    what is left divided by the variants still to run. AMP variants are skipped on the CPU
    (mmengine's ``AmpOptimWrapper`` needs a GPU).
    """
    require_device(context.device)
    quiet_mmengine()
    args = context.args
    register_all_modules()
    variants = [(name, *parse_variant(name)) for name in args.train_variants]
    cfg = training_config(args.config, 'fp32')
    batches = synthetic_batches(
        tuple(args.image_size),
        args.train_batch,
        args.instances,
        cfg.model.bbox_head.num_classes,
        args.seed,
    )
    context.put('images_per_iteration', args.train_batch)
    context.put('cudnn_benchmark', bool(cfg.get('env_cfg', {}).get('cudnn_benchmark', False)))
    rows: dict[str, dict] = {}
    for position, (name, precision, channels_last) in enumerate(variants):
        share = context.left() / (len(variants) - position)
        if precision != 'fp32' and context.device != 'cuda':
            rows[name] = dict(status='skipped: AMP training needs a GPU')
        elif share <= 0:
            rows[name] = dict(status='skipped: out of time')
        else:
            print(f'[train] {name}: {share:.0f} s', flush=True)
            try:
                figures = time_training(
                    training_config(args.config, precision),
                    channels_last,
                    batches,
                    context.device,
                    args.train_warmup,
                    args.train_iters,
                    time.perf_counter() + share,
                )
                rows[name] = dict(status='ok', **figures)
            except Exception as error:  # one variant failing leaves the others to measure
                rows[name] = dict(status=f'failed: {type(error).__name__}: {error}')
                context.fail(f'training {name}: {type(error).__name__}: {error}')
        context.put('variants', rows)
        _training_table(context, rows)


def _training_table(context: StageContext, rows: dict[str, dict]) -> None:
    height, width = context.args.image_size
    header = ['variant', 'status', 'iterations', 'images/s', 'ms/iter', 'peak MiB', 'vs fp32']
    fp32 = rows.get('fp32', {}).get('images_per_s')
    context.table(
        f'training {context.args.config} at {width}x{height}, {context.args.train_batch} images '
        f'per iteration, {device_setting(context.device)}',
        header,
        [
            [
                name,
                row['status'],
                row.get('iterations'),
                row.get('images_per_s'),
                row.get('ms_per_iter'),
                row.get('peak_mib'),
                row['images_per_s'] / fp32 if fp32 and 'images_per_s' in row else None,
            ]
            for name, row in rows.items()
        ],
    )


class PieceTimer:
    """Synchronised wall time of the pieces of ``inference_detector``, by patching them.

    Pieces: ``backbone+neck`` (``extract_feat``), ``head`` (the head's forward),
    ``decode+nms`` (``predict_by_feat``), ``nms`` (``batched_nms`` as the head's ``polygon_nms``
    calls it) and
    ``masks`` (``_to_result`` of the inference API: the copy to the host, rasterising the
    polygons and encoding them as RLE).

    Args:
        model: a detector from ``init_detector``.
        device: 'cuda' or 'cpu'.
    """

    def __init__(self, model: nn.Module, device: str) -> None:
        self.model = model
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.nms_boxes = 0

    def _timed(self, name: str, function: Callable) -> Callable:
        @functools.wraps(function)
        def timed(*args, **kwargs):
            synchronize(self.device)
            start = time.perf_counter()
            output = function(*args, **kwargs)
            synchronize(self.device)
            self.seconds[name] += time.perf_counter() - start
            if name == 'nms':
                self.nms_boxes += len(args[0])
            return output

        return timed

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        """Within this context every call of a piece adds to :attr:`seconds`."""
        head = self.model.bbox_head
        targets = [
            ('backbone+neck', self.model, 'extract_feat'),
            ('head', head, 'forward'),
            ('decode+nms', head, 'predict_by_feat'),
            ('nms', polygon_nms_module, 'batched_nms'),
            ('masks', inference_api, '_to_result'),
        ]
        with contextlib.ExitStack() as stack:
            for name, owner, attribute in targets:
                timed = self._timed(name, getattr(owner, attribute))
                stack.enter_context(mock.patch.object(owner, attribute, timed))
            yield


def time_inference(
    model: nn.Module,
    images: list[np.ndarray],
    precision: str,
    device: str,
    warmup: int,
    max_calls: int,
    stop_at: float,
) -> dict:
    """Frames per second of ``inference_detector`` on a batch, and where the time goes.

    Args:
        model: a detector from ``init_detector``.
        images: the batch, N (H, W, 3) uint8 BGR arrays.
        precision: 'fp32', or 'fp16' / 'bf16' for the call under ``torch.autocast``.
        device: the model's device.
        warmup: untimed calls first.
        max_calls: timed calls at most.
        stop_at: ``time.perf_counter()`` after which no further timed call starts (after
            ``MIN_TIMED_CALLS`` of them).

    Returns:
        dict: ``calls``, ``fps`` (images per second end to end, image arrays in, RLEs out),
        ``detections_per_image``, ``nms_boxes_per_image`` and ``ms_per_image`` per piece
        (``network``, ``decode``, ``nms``, ``masks``: copy to the host, rasterise, RLE;
        ``other``: test pipeline and data preprocessor; ``total``) from ``SPLIT_CALLS`` calls
        with the pieces timed apart.
    """
    dtype = PRECISIONS[precision]
    autocast = (
        torch.autocast(device_type=device, dtype=dtype) if dtype else contextlib.nullcontext()
    )
    with autocast:
        for _ in range(warmup):
            inference_detector(model, images)
        timer = PieceTimer(model, device)
        with timer.patched():
            start = time.perf_counter()
            for _ in range(SPLIT_CALLS):
                inference_detector(model, images)
            split_total = time.perf_counter() - start
        synchronize(device)
        start = time.perf_counter()
        calls = 0
        while calls < max_calls and (calls < MIN_TIMED_CALLS or time.perf_counter() < stop_at):
            results = inference_detector(model, images)
            calls += 1
        synchronize(device)
        seconds = time.perf_counter() - start
    per_image = 1e3 / (SPLIT_CALLS * len(images))
    pieces = {key: value * per_image for key, value in timer.seconds.items()}
    split = dict(
        network=pieces['backbone+neck'] + pieces['head'],
        decode=pieces['decode+nms'] - pieces['nms'],
        nms=pieces['nms'],
        masks=pieces['masks'],
        total=split_total * per_image,
    )
    split['other'] = split['total'] - sum(
        split[key] for key in ('network', 'decode', 'nms', 'masks')
    )
    return dict(
        calls=calls,
        fps=calls * len(images) / seconds,
        detections_per_image=sum(len(result) for result in results) / len(images),
        nms_boxes_per_image=timer.nms_boxes / (SPLIT_CALLS * len(images)),
        ms_per_image=split,
    )


def load_candidates(model: nn.Module, image: np.ndarray, candidates: int, size: float) -> float:
    """Give the random model a trained model's post-processing load; returns its ``score_thr``.

    The box and ray predictors' biases are set to ``log(size / 2)``, so boxes are about ``size``
    pixels wide and polygons circles of diameter ``size``; ``test_cfg.score_thr`` is lowered so
    that about ``candidates`` (point, class) pairs of ``image`` lie above it. The classifier
    stays random, so scores and their order are.
    """
    head = model.bbox_head
    with torch.no_grad():
        head.polar_reg.bias.fill_(math.log(size / 2))
        head.polar_mask.bias.fill_(math.log(size / 2))
    captured: list[torch.Tensor] = []
    predict_by_feat = head.predict_by_feat

    def capture(cls_scores: list[torch.Tensor], *args, **kwargs):
        captured.extend(score[0].detach().float().flatten() for score in cls_scores)
        return predict_by_feat(cls_scores, *args, **kwargs)

    with mock.patch.object(head, 'predict_by_feat', capture):
        inference_detector(model, image)
    probabilities = torch.cat(captured).sigmoid()
    count = min(candidates + 1, probabilities.numel())
    head.test_cfg['score_thr'] = float(probabilities.topk(count).values[-1])
    return head.test_cfg['score_thr']


def inference(context: StageContext) -> None:
    """End-to-end inference of ``--config`` per batch size and precision, in two scenarios.

    The model has the config's initialisation (random weights; the classifier's bias gives every
    class a probability of about 0.01). ``configured``: the config's test settings, so almost no
    candidate passes ``score_thr`` and the time is the network's and the pipeline's.
    ``loaded``: after :func:`load_candidates`, about ``--infer-candidates`` candidates per image
    reach NMS and up to ``max_per_img`` detections are rasterised, as with a trained model on a
    busy image. The tables give the NMS boxes and detections per image of both.
    """
    require_device(context.device)
    quiet_mmengine()
    args = context.args
    image_size = tuple(args.image_size)
    cfg = with_input_size(load_config(args.config), image_size)
    model = init_detector(cfg, device=context.device)
    model.init_weights()
    rng = np.random.default_rng(args.seed)
    images = [
        rng.integers(0, 256, (*image_size, 3), np.uint8) for _ in range(max(args.infer_batches))
    ]
    measurements = [
        (scenario, precision, batch)
        for scenario in ('configured', 'loaded')
        for precision in args.infer_dtypes
        for batch in args.infer_batches
    ]
    context.put('cudnn_benchmark', torch.backends.cudnn.benchmark)
    rows: list[dict] = []
    for position, (scenario, precision, batch) in enumerate(measurements):
        if scenario == 'loaded' and 'score_thr' not in context.results:
            score_thr = load_candidates(
                model, images[0], args.infer_candidates, args.infer_object_size
            )
            context.put('score_thr', score_thr)
        share = context.left() / (len(measurements) - position)
        row = dict(scenario=scenario, precision=precision, batch=batch)
        if share <= 0:
            row['status'] = 'skipped: out of time'
        else:
            print(f'[inference] {scenario} {precision} batch {batch}: {share:.0f} s', flush=True)
            figures = time_inference(
                model,
                images[:batch],
                precision,
                context.device,
                args.infer_warmup,
                args.infer_iters,
                time.perf_counter() + share,
            )
            row.update(status='ok', **figures)
            if scenario == 'loaded':
                context.goal(
                    f'end-to-end inference >= 30 fps ({precision}, batch {batch}, loaded)',
                    f'{figures["fps"]:.1f} fps',
                    figures['fps'] >= 30,
                )
        rows.append(row)
        context.put('rows', rows)
        _inference_table(context, rows)


def _inference_table(context: StageContext, rows: list[dict]) -> None:
    height, width = context.args.image_size
    pieces = ('network', 'decode', 'nms', 'masks', 'other')
    context.table(
        f'inference {context.args.config} at {width}x{height}, image array in, polygons and '
        f'RLE out, {device_setting(context.device)}; ms per image by piece',
        [
            'scenario',
            'precision',
            'batch',
            'status',
            'fps',
            *pieces,
            'NMS boxes/img',
            'detections/img',
        ],
        [
            [
                row['scenario'],
                row['precision'],
                row['batch'],
                row['status'],
                row.get('fps'),
                *(row.get('ms_per_image', {}).get(piece) for piece in pieces),
                row.get('nms_boxes_per_image'),
                row.get('detections_per_image'),
            ]
            for row in rows
        ],
    )

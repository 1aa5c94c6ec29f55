"""One-shot GPU check of polarmask: build, kernels, CUDA tests and GPU benchmarks in a time budget.

From the checkout's root (``benchmarks/gpu/run.sh`` installs the carried wheels, then runs this):

    python -m benchmarks.gpu.check --out DIR                   # the GPU run, about 7 minutes
    python -m benchmarks.gpu.check --device cpu --out DIR ...  # the CPU dry run (tests)

Stages, in order (``--stages`` picks some): env, build, kernels, tests, nms, targets, inference,
train (``stages.py``, ``model_stages.py``). Each runs in a child process forked from this one,
which imports torch but never initialises CUDA, so that every child sets CUDA up afresh and a
crash, a hang or a poisoned CUDA context ends one stage only. A stage's budget is the smaller of
its cap (``--budget``) and what is left of ``--time-limit``; it plans its iterations to end
before ``PLAN_FRACTION`` of the budget and is killed with its process group at the budget,
keeping what it recorded until then. After every stage DIR/gpu_check.json (every figure) and
DIR/gpu_check.md (the tables) are rewritten, so a run killed from outside leaves the stages it
finished. Exit status 0 when every selected stage passed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.gpu.context import StageContext, write_json
from benchmarks.gpu.report import render_markdown

STAGES = ('env', 'build', 'kernels', 'tests', 'nms', 'targets', 'inference', 'train')
DEFAULT_BUDGETS = {
    'env': 30,
    'build': 180,
    'kernels': 30,
    'tests': 90,
    'nms': 60,
    'targets': 45,
    'inference': 120,
    'train': 180,
}
"""Cap of each stage in seconds; together more than ``--time-limit``, which rules."""
MIN_BUDGET_S = 10.0
"""A stage with less time than this left is skipped."""
PLAN_FRACTION = 0.85
"""Stages plan their work to end within this fraction of their budget."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; the defaults are the GPU run (R-50 at 1280x768)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.environ.get('OUT', 'work_dirs/gpu_check'))
    parser.add_argument('--device', default='cuda', choices=('cuda', 'cpu'))
    parser.add_argument('--stages', nargs='+', default=list(STAGES), choices=STAGES)
    parser.add_argument(
        '--time-limit', type=float, default=450.0, help='seconds for all stages together'
    )
    parser.add_argument(
        '--budget',
        nargs='+',
        default=[],
        metavar='STAGE=SECONDS',
        help=f'override stage caps (defaults: {DEFAULT_BUDGETS})',
    )
    parser.add_argument('--config', default='configs/polarmask/4gpu/polar_768_1x_r50.py')
    parser.add_argument(
        '--image-size',
        type=int,
        nargs=2,
        default=[768, 1280],
        metavar=('H', 'W'),
        help='network input of training, inference and targets, in pixels',
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--tests',
        nargs='+',
        default=None,
        help='pytest paths or node ids (default: the test files that skip without CUDA)',
    )
    parser.add_argument('--nms-sizes', type=int, nargs='+', default=[1000, 3000, 10000, 30000])
    parser.add_argument('--nms-iou', type=float, default=0.5)
    parser.add_argument('--target-images', type=int, default=16)
    parser.add_argument('--instances', type=int, default=7, help='gt instances per image')
    parser.add_argument('--train-batch', type=int, default=4, help='images per iteration')
    parser.add_argument('--train-iters', type=int, default=200, help='timed iterations at most')
    parser.add_argument('--train-warmup', type=int, default=10)
    parser.add_argument(
        '--train-variants',
        nargs='+',
        default=['fp32', 'fp16', 'bf16', 'bf16-cl'],
        help='precision (fp32, fp16, bf16 = AMP) and -cl for channels_last',
    )
    parser.add_argument('--infer-batches', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--infer-dtypes', nargs='+', default=['fp32', 'fp16'])
    parser.add_argument('--infer-iters', type=int, default=30, help='timed calls at most')
    parser.add_argument('--infer-warmup', type=int, default=3)
    parser.add_argument(
        '--infer-candidates',
        type=int,
        default=2000,
        help='(point, class) candidates per image above score_thr in the loaded scenario',
    )
    parser.add_argument(
        '--infer-object-size',
        type=float,
        default=64.0,
        help='box side and polygon diameter in pixels in the loaded scenario',
    )
    args = parser.parse_args(argv)
    budgets = dict(DEFAULT_BUDGETS)
    for item in args.budget:
        stage, _, seconds = item.partition('=')
        if stage not in budgets or not seconds.replace('.', '', 1).isdigit():
            parser.error(f'--budget {item!r}: give STAGE=SECONDS with STAGE one of {STAGES}')
        budgets[stage] = float(seconds)
    args.budgets = budgets
    return args


def _child(
    function: Callable[[StageContext], None],
    context: StageContext,
) -> None:
    """Body of a stage's child process: own process group, run, record the outcome."""
    os.setsid()
    status = 0
    try:
        function(context)
    except BaseException as error:  # recorded for the report, then the child fails
        context.results['error'] = f'{type(error).__name__}: {error}'
        context.results['traceback'] = traceback.format_exc(limit=-8)
        status = 1
    context.save()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _kill_group(process: multiprocessing.process.BaseProcess) -> None:
    """Kill a stage's child and everything it started (its process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        process.kill()
    process.join()


def run_stage(
    name: str,
    function: Callable[[StageContext], None],
    args: argparse.Namespace,
    budget: float,
    scratch: Path,
) -> dict:
    """Run one stage in a forked child within ``budget`` seconds.

    Returns:
        dict: ``status`` ('ok', 'failed', 'timeout', 'crashed'), ``seconds``, ``budget_s`` and
        what the stage recorded (``results``; ``error`` and ``traceback`` when it raised).
    """
    path = scratch / f'{name}.json'
    start = time.monotonic()
    context = StageContext(
        name=name,
        args=args,
        out_dir=Path(args.out),
        path=path,
        plan_deadline=start + PLAN_FRACTION * budget,
    )
    process = multiprocessing.get_context('fork').Process(
        target=_child, args=(function, context), name=f'gpu-check-{name}'
    )
    process.start()
    process.join(budget)
    timed_out = process.is_alive()
    if timed_out:
        _kill_group(process)
    seconds = time.monotonic() - start
    results = json.loads(path.read_text()) if path.exists() else {}
    error = results.pop('error', None)
    entry = dict(seconds=round(seconds, 1), budget_s=round(budget, 1))
    if timed_out:
        entry.update(status='timeout', note=f'killed at its budget of {budget:.0f} s')
    elif process.exitcode == 0:
        failed = results.get('failed_checks', [])
        entry.update(status='failed' if failed else 'ok', note='; '.join(failed))
    elif error is not None:
        entry.update(status='failed', note=error)
    else:
        entry.update(status='crashed', note=f'child exited with status {process.exitcode}')
    entry['results'] = results
    return entry


def _check_cuda_untouched() -> None:
    import torch

    if torch.cuda.is_initialized():
        raise RuntimeError(
            'the driver process initialised CUDA, so its forked stages could not use it: keep '
            'every CUDA call inside the stage functions'
        )


def stage_functions() -> dict[str, Callable[[StageContext], None]]:
    """The stage functions by name (imports torch and polarmask, without touching CUDA)."""
    from benchmarks.gpu import model_stages, stages

    return {
        'env': stages.env,
        'build': stages.build,
        'kernels': stages.kernels,
        'tests': stages.tests,
        'nms': stages.nms,
        'targets': stages.targets,
        'inference': model_stages.inference,
        'train': model_stages.train,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the selected stages and write the report; returns the exit status."""
    args = parse_args(argv)
    # torch.cuda.is_available() in this process would then not initialise CUDA (fork safety).
    os.environ.setdefault('PYTORCH_NVML_BASED_CUDA_CHECK', '1')
    functions = stage_functions()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = dict(
        started=datetime.now(timezone.utc).isoformat(timespec='seconds'),
        command=' '.join(
            [
                sys.executable,
                '-m',
                'benchmarks.gpu.check',
                *(sys.argv[1:] if argv is None else argv),
            ]
        ),
        device=args.device,
        time_limit_s=args.time_limit,
        stages={},
    )
    start = time.monotonic()

    def write() -> None:
        report['total_s'] = round(time.monotonic() - start, 1)
        write_json(out_dir / 'gpu_check.json', report)
        (out_dir / 'gpu_check.md').write_text(render_markdown(report))

    with tempfile.TemporaryDirectory(prefix='gpu-check-') as scratch:
        for name in STAGES:
            left = args.time_limit - (time.monotonic() - start)
            budget = min(args.budgets[name], left)
            if name not in args.stages:
                entry = dict(status='skipped', note='not in --stages', results={})
            elif budget < MIN_BUDGET_S:
                entry = dict(status='skipped', note=f'out of time ({left:.0f} s left)', results={})
            else:
                _check_cuda_untouched()
                print(f'[check] {name}: budget {budget:.0f} s', flush=True)
                entry = run_stage(name, functions[name], args, budget, Path(scratch))
                print(f'[check] {name}: {entry["status"]} in {entry["seconds"]} s', flush=True)
            report['stages'][name] = entry
            write()
    print(f'[check] wrote {out_dir / "gpu_check.json"} and {out_dir / "gpu_check.md"}')
    selected = [report['stages'][name] for name in args.stages]
    return 0 if all(entry['status'] == 'ok' for entry in selected) else 1


if __name__ == '__main__':
    sys.exit(main())

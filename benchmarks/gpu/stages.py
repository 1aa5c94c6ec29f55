"""Stages of the GPU check that need no model: machine, build, kernels, tests, NMS, targets.

Each takes a :class:`~benchmarks.gpu.context.StageContext` and records into it; ``check.py``
runs each in a child process of its own, from the checkout's root.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import torch

from benchmarks import nms as nms_benchmark
from benchmarks import polar_targets as targets_benchmark
from benchmarks.gpu.context import StageContext
from polarmask.models.task_modules import PolarTarget
from tests.oracles.random_instances import random_instances

ROOT = Path(__file__).resolve().parents[2]
NMS_ROW_FIELDS = ('setting', 'op', 'boxes', 'kept', 'same', 'ours_s', 'torchvision_s')
"""The fields of a row of ``benchmarks/nms.py``'s ``run``."""
TAIL_CHARS = 3000
"""How much of a failed command's log goes into the error."""
PACKAGES = (
    'torchvision',
    'numpy',
    'mmengine',
    'mmcv-lite',
    'pycocotools',
    'opencv-python-headless',
    'opencv-python',
    'faster-coco-eval',
    'setuptools',
)


def require_device(device: str) -> None:
    """Raise a clear error when the check was asked for CUDA and no GPU is visible."""
    if device == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(
            f'--device cuda but torch {torch.__version__} sees no GPU (torch.version.cuda = '
            f'{torch.version.cuda}); run with --device cpu for the dry run'
        )


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work (no-op on the CPU)."""
    if device == 'cuda':
        torch.cuda.synchronize()


def device_setting(device: str) -> str:
    """'cuda (GPU name)' or 'cpu, N threads', for tables."""
    if device == 'cuda':
        return f'cuda ({torch.cuda.get_device_name()})'
    return f'cpu, {torch.get_num_threads()} threads'


def run_command(command: list[str], log: Path, timeout: float, env: dict | None = None) -> int:
    """Run a command from the checkout's root in a process group of its own, output to ``log``.

    Returns:
        int: the exit status.

    Raises:
        TimeoutError: it still ran after ``timeout`` seconds; its whole group was killed.
    """
    with open(log, 'w') as stream:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=stream,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            return process.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise TimeoutError(
                f'{" ".join(command)} still ran after {timeout:.0f} s (log: {log})'
            ) from None


def _tail(log: Path) -> str:
    return log.read_text(errors='replace')[-TAIL_CHARS:]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _output_lines(command: list[str]) -> list[str]:
    """Lines of a command's stdout; empty when it is missing or fails."""
    if shutil.which(command[0]) is None:
        return []
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    return result.stdout.strip().splitlines() if result.returncode == 0 else []


def registered_kernels() -> dict[str, bool]:
    """Whether ``torch.ops.polarmask.nms`` has a CPU and a CUDA kernel (imports ``_C``)."""
    import polarmask._C  # noqa: F401  (registers torch.ops.polarmask.nms)

    return {
        key: torch._C._dispatch_has_kernel_for_dispatch_key('polarmask::nms', key)
        for key in ('CPU', 'CUDA')
    }


def env(context: StageContext) -> None:
    """Machine and versions: GPU, driver, torch, CUDA, cuDNN, nvcc, packages, commit."""
    require_device(context.device)
    nvcc = _output_lines(['nvcc', '--version'])
    commit = _output_lines(['git', 'rev-parse', '--short', 'HEAD'])
    packages = {name: _version(name) for name in PACKAGES}
    info = dict(
        python=platform.python_version(),
        platform=platform.platform(),
        cpus=os.cpu_count(),
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        torchvision=packages['torchvision'],
        nvcc=nvcc[-1] if nvcc else None,
        commit=commit[0] if commit else None,
        packages=packages,
    )
    if context.device == 'cuda':
        properties = torch.cuda.get_device_properties(0)
        driver = _output_lines(['nvidia-smi', '--query-gpu=driver_version', '--format=csv'])
        info['gpu'] = dict(
            name=torch.cuda.get_device_name(0),
            capability='.'.join(map(str, torch.cuda.get_device_capability(0))),
            memory_gib=round(properties.total_memory / 2**30, 1),
            multiprocessors=properties.multi_processor_count,
            driver=driver[-1] if len(driver) > 1 else None,
            torch_arch_list=torch.cuda.get_arch_list(),
        )
    for key, value in info.items():
        context.put(key, value)


def build(context: StageContext) -> None:
    """Compile ``polarmask._C`` in place against this torch (``setup.py build_ext --inplace``).

    ``FORCE_CUDA=1`` on a GPU run, so that a missing nvcc fails the build instead of leaving the
    CUDA kernel out; ``MAX_JOBS`` defaults to the CPU count and ``TORCH_CUDA_ARCH_LIST`` to the
    visible GPU's architecture (setup.py). The compiler output goes to ``build.log``.
    """
    env = dict(os.environ)
    env.setdefault('MAX_JOBS', str(os.cpu_count() or 1))
    env.setdefault('FORCE_CUDA', '1' if context.device == 'cuda' else '0')
    command = [sys.executable, 'setup.py', 'build_ext', '--inplace']
    log = context.out_dir / 'build.log'
    settings = {key: env.get(key) for key in ('FORCE_CUDA', 'MAX_JOBS', 'TORCH_CUDA_ARCH_LIST')}
    context.put('command', ' '.join(command[1:]))
    context.put('settings', settings)
    start = time.monotonic()
    status = run_command(command, log, context.left(), env)
    context.put('build_s', round(time.monotonic() - start, 1))
    if status != 0:
        raise RuntimeError(f'the build exited with status {status}; end of {log}:\n{_tail(log)}')
    context.put('libraries', sorted(str(p.relative_to(ROOT)) for p in ROOT.glob('polarmask/_C*')))


def kernels(context: StageContext) -> None:
    """The extension loads and registers its kernels; on a GPU run, which GPU code it holds."""
    require_device(context.device)
    registered = registered_kernels()
    import polarmask._C

    library = Path(polarmask._C.__file__)
    context.put('library', str(library))
    context.put('registered', registered)
    if not registered['CPU']:
        context.fail('polarmask._C registered no CPU kernel')
    if context.device == 'cuda':
        if not registered['CUDA']:
            context.fail('polarmask._C registered no CUDA kernel: the build did not compile it')
        elf = _output_lines(['cuobjdump', '--list-elf', str(library)])
        ptx = _output_lines(['cuobjdump', '--list-ptx', str(library)])
        context.put('cubin_archs', sorted(set(re.findall(r'sm_\d+a?', ' '.join(elf)))))
        context.put('ptx_archs', sorted(set(re.findall(r'sm_\d+a?', ' '.join(ptx)))))


def _junit_summary(path: Path) -> dict:
    """Outcome counts, failed tests and skipped tests (with reasons) of a pytest JUnit file."""
    counts = dict(passed=0, failed=0, skipped=0)
    failed, skipped = [], []
    for case in ElementTree.parse(path).iter('testcase'):
        name = f'{case.get("classname")}::{case.get("name")}'
        problem = case.find('failure') if case.find('failure') is not None else case.find('error')
        skip = case.find('skipped')
        if problem is not None:
            counts['failed'] += 1
            failed.append([name, (problem.get('message') or '')[:300]])
        elif skip is not None:
            counts['skipped'] += 1
            skipped.append([name, (skip.get('message') or '')[:300]])
        else:
            counts['passed'] += 1
    return dict(counts=counts, failed=failed, skipped=skipped)


def cuda_test_files() -> list[str]:
    """The test files that hold tests skipped without CUDA, relative to the checkout."""
    return sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / 'tests').rglob('test_*.py')
        if 'torch.cuda.is_available()' in path.read_text()
    )


def tests(context: StageContext) -> None:
    """pytest on the tests that need CUDA (whole files, CPU tests included); log in tests.log.

    On a GPU run no test may be skipped for want of CUDA.
    """
    selection = context.args.tests or cuda_test_files()
    junit = context.path.with_suffix('.junit.xml')
    log = context.out_dir / 'tests.log'
    command = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider']
    context.put('selection', selection)
    status = run_command([*command, f'--junitxml={junit}', *selection], log, context.left())
    context.put('exit_status', status)
    if not junit.exists():
        raise RuntimeError(
            f'pytest wrote no results (status {status}); end of {log}:\n{_tail(log)}'
        )
    summary = _junit_summary(junit)
    context.put('summary', summary)
    context.table(
        'pytest',
        ['selection', 'passed', 'failed', 'skipped'],
        [[' '.join(selection), *summary['counts'].values()]],
    )
    if summary['failed'] or summary['skipped']:
        rows = [[name, f'failed: {message}'] for name, message in summary['failed']]
        rows += [[name, f'skipped: {message}'] for name, message in summary['skipped']]
        context.table('tests not passed', ['test', 'outcome: message'], rows)
    if status != 0:
        context.fail(f'pytest exited with status {status} ({len(summary["failed"])} failed)')
    if context.device == 'cuda':
        for name, message in summary['skipped']:
            if re.search(r'cuda|gpu', message, re.IGNORECASE):
                context.fail(f'{name} skipped on a GPU machine: {message}')


def nms(context: StageContext) -> None:
    """``benchmarks/nms.py`` on the device: our kernels against torchvision's, keep indices equal.

    Sizes run in order until the plan deadline; every op that ``benchmarks/nms.py`` measures is
    recorded, with the goal "no slower than torchvision" at 3k and 30k boxes.
    """
    require_device(context.device)
    kernel = 'CUDA' if context.device == 'cuda' else 'CPU'
    if not registered_kernels()[kernel]:
        raise RuntimeError(
            f'polarmask._C has no {kernel} kernel, so ours would be the fallback: build it first'
        )
    setting = device_setting(context.device)
    rows: list[dict] = []
    for num_boxes in context.args.nms_sizes:
        if rows and context.left() < 0:
            context.put('cut', f'out of time before {num_boxes} boxes')
            break
        for row in nms_benchmark.run([num_boxes], setting, context.device, context.args.nms_iou):
            rows.append(dict(zip(NMS_ROW_FIELDS, row, strict=True)))
        context.put('rows', rows)
        context.table(
            f'NMS, IoU {context.args.nms_iou}, {setting}',
            ['op', 'boxes', 'kept', 'same keep', 'ours ms', 'torchvision ms', 'ours/tv'],
            [
                [
                    row['op'],
                    row['boxes'],
                    row['kept'],
                    row['same'],
                    row['ours_s'] * 1e3,
                    row['torchvision_s'] * 1e3,
                    row['ours_s'] / row['torchvision_s'],
                ]
                for row in rows
            ],
        )
    for row in rows:
        if not row['same']:
            context.fail(f'{row["op"]}, {row["boxes"]} boxes: keep indices differ from torchvision')
        if row['op'] in ('nms', 'batched_nms') and row['boxes'] in (3000, 30000):
            ratio = row['ours_s'] / row['torchvision_s']
            context.goal(
                f'{context.device} {row["op"]} no slower than torchvision at {row["boxes"]} boxes',
                f'{ratio:.2f} x torchvision ({row["ours_s"] * 1e3:.3f} ms)',
                ratio <= 1,
            )


def targets(context: StageContext) -> None:
    """Polar targets of a batch (the training path): on the device against the CPU, equal.

    Images of ``--image-size`` with ``--instances`` random instances each (stars, ellipses,
    donuts, two-part masks, lines, border shapes; ``tests/oracles/random_instances.py``),
    contours extracted beforehand as the pipeline does; ``benchmarks/polar_targets.py`` times
    ``PolarTarget.get_targets`` with the points on each device.
    """
    require_device(context.device)
    args = context.args
    pad_shape = tuple(args.image_size)
    rng = np.random.default_rng(args.seed)
    max_size = min(300.0, min(pad_shape) / 2)
    batch = [
        targets_benchmark.instances_of(
            *random_instances(
                rng, pad_shape, args.instances, targets_benchmark.NUM_CLASSES, max_size=max_size
            )
        )
        for _ in range(args.target_images)
    ]
    target = PolarTarget(targets_benchmark.STRIDES, targets_benchmark.RANGES, 1.5, 36)
    cpu_ms, cpu_targets = targets_benchmark.time_batched_targets(target, batch, pad_shape, 'cpu', 5)
    device_ms, device_targets = targets_benchmark.time_batched_targets(
        target, batch, pad_shape, context.device, 20
    )
    same = targets_benchmark.same(device_targets, cpu_targets)
    positives = int((cpu_targets[0] < targets_benchmark.NUM_CLASSES).sum())
    images = len(batch)
    context.put('images', images)
    context.put('pad_shape', pad_shape)
    context.put('positives', positives)
    context.put('cpu_ms', cpu_ms)
    context.put('device_ms', device_ms)
    context.put('same', same)
    context.table(
        f'polar targets, {images} images of {pad_shape[1]}x{pad_shape[0]}, {args.instances} '
        f'instances each, {positives} positives',
        ['points on', 'ms per batch', 'ms per image', 'equal to the CPU'],
        [
            [device_setting('cpu'), cpu_ms, cpu_ms / images, True],
            [device_setting(context.device), device_ms, device_ms / images, same],
        ],
    )
    if not same:
        context.fail(f'targets on {context.device} differ from those on the CPU')
    if context.device == 'cuda' and images == 16:
        context.goal(
            'targets for 16 images <= 5 ms on the GPU', f'{device_ms:.2f} ms', device_ms <= 5
        )

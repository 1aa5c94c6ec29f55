"""Builds polarmask and its extension ``polarmask._C`` (the NMS kernels).

``pip install --no-build-isolation -e .`` compiles the CPU kernel always and the CUDA kernel when
torch is a CUDA build and nvcc is found (``CUDA_HOME``, ``nvcc`` on ``PATH`` or
``/usr/local/cuda``). Environment variables:

* ``FORCE_CUDA=1`` builds the CUDA kernel even when the check above fails (and errors if it
  cannot); ``FORCE_CUDA=0`` builds the CPU kernel only.
* ``TORCH_CUDA_ARCH_LIST`` picks the GPU architectures; without it the visible GPUs' are used,
  or ``DEFAULT_CUDA_ARCH_LIST`` when none is visible (machines building for others, CI).
* ``MAX_JOBS`` caps the parallel compile jobs.
"""

import glob
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup

CSRC = osp.join('polarmask', 'ops', 'nms', 'csrc')
# Ampere binaries also run on sm_86/87/89; the PTX of Hopper is compiled by the driver for newer
# GPUs (Blackwell). CUDA 13 no longer targets GPUs older than sm_75.
DEFAULT_CUDA_ARCH_LIST = '8.0;9.0+PTX'


def get_version() -> str:
    namespace: dict = {}
    with open(osp.join('polarmask', 'version.py')) as f:
        exec(compile(f.read(), 'polarmask/version.py', 'exec'), namespace)
    return namespace['__version__']


def parse_requirements(path: str) -> list[str]:
    """The requirement lines of ``path``, following ``-r other.txt`` includes."""
    requirements = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line.startswith('-r '):
                requirements += parse_requirements(osp.join(osp.dirname(path), line[3:].strip()))
            elif line:
                requirements.append(line)
    return requirements


def wheel_cuda_include_dirs() -> list[str]:
    """Include folders of the ``nvidia-*`` wheels that a CUDA build of torch installs.

    A CUDA toolkit made of pip wheels (nvcc, cudart) lacks headers that torch's CUDA headers
    include (cuBLAS, cuSPARSE, cuSOLVER); the wheels torch depends on ship them.
    """
    import importlib.util

    spec = importlib.util.find_spec('nvidia')
    if spec is None or spec.submodule_search_locations is None:
        return []
    return sorted(
        include
        for location in spec.submodule_search_locations
        for include in glob.glob(osp.join(location, '*', 'include'))
    )


def find_cuda_toolkit() -> str | None:
    """The CUDA toolkit to build with.

    ``CUDA_HOME`` (or ``CUDA_PATH``) when set; otherwise the first of the folder above the real
    ``nvcc`` on ``PATH`` and ``/usr/local/cuda`` that holds ``bin/nvcc`` and
    ``include/cuda_runtime.h``. torch alone would take the folder above ``nvcc`` on ``PATH``,
    which is wrong when that is a wrapper script (``/usr/local/bin/nvcc`` -> ``/usr/local``).
    """
    for variable in ('CUDA_HOME', 'CUDA_PATH'):
        if os.getenv(variable):
            return os.environ[variable]
    nvcc = shutil.which('nvcc')
    candidates = [osp.dirname(osp.dirname(osp.realpath(nvcc)))] if nvcc else []
    for root in candidates + ['/usr/local/cuda']:
        if osp.isfile(osp.join(root, 'bin', 'nvcc')) and osp.isfile(
            osp.join(root, 'include', 'cuda_runtime.h')
        ):
            return root
    return None


def with_cuda_kernel(toolkit: str | None) -> bool:
    """Whether to compile the CUDA kernel too (see ``FORCE_CUDA`` above)."""
    import torch

    force_cuda = os.getenv('FORCE_CUDA')
    if force_cuda == '0':
        return False
    found = (
        torch.version.cuda is not None
        and toolkit is not None
        and osp.isfile(osp.join(toolkit, 'bin', 'nvcc'))
    )
    if force_cuda == '1' and not found:
        raise RuntimeError(
            f'FORCE_CUDA=1 but the CUDA kernel cannot be built: torch {torch.__version__} is '
            f'built for CUDA {torch.version.cuda} and the CUDA toolkit found is {toolkit!r}. '
            f'Install a CUDA build of torch and the CUDA toolkit (nvcc), and set CUDA_HOME to it.'
        )
    return found


def make_extensions() -> list:
    toolkit = find_cuda_toolkit()
    if toolkit is not None:
        # Read by torch.utils.cpp_extension when it is first imported, just below.
        os.environ['CUDA_HOME'] = toolkit
    import torch
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    sources = [osp.join(CSRC, 'nms.cpp'), osp.join(CSRC, 'cpu', 'nms_cpu.cpp')]
    # No fused multiply-add: the kernels round like torchvision and like each other.
    extra_compile_args = {'cxx': ['-O3', '-ffp-contract=off']}
    if not with_cuda_kernel(toolkit):
        return [CppExtension('polarmask._C', sources, extra_compile_args=extra_compile_args)]
    if not torch.cuda.is_available():
        os.environ.setdefault('TORCH_CUDA_ARCH_LIST', DEFAULT_CUDA_ARCH_LIST)
    extra_compile_args['nvcc'] = ['-O3']
    extension = CUDAExtension(
        'polarmask._C',
        sources + [osp.join(CSRC, 'cuda', 'nms_cuda.cu')],
        extra_compile_args=extra_compile_args,
    )
    # After the toolkit's own include folder, so that they only fill its gaps.
    extension.include_dirs += wheel_cuda_include_dirs()
    return [extension]


def get_cmdclass() -> dict:
    from torch.utils.cpp_extension import BuildExtension

    return {'build_ext': BuildExtension}


setup(
    name='polarmask',
    version=get_version(),
    description='PolarMask instance segmentation on PyTorch 2 and OpenMMLab 2',
    packages=find_packages(exclude=('tests', 'configs', 'tools', 'benchmarks')),
    python_requires='>=3.10',
    install_requires=parse_requirements(osp.join('requirements', 'runtime.txt')),
    extras_require={
        extra: parse_requirements(osp.join('requirements', f'{extra}.txt'))
        for extra in ('onnx', 'optional', 'tests')
    },
    ext_modules=make_extensions(),
    cmdclass=get_cmdclass(),
    zip_safe=False,
)

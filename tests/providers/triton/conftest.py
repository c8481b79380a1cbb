"""Without a GPU, the triton provider's kernels run through Triton's CPU interpreter: the variable
must be set before any @triton.jit module is imported (they are imported lazily, at first use)."""

import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")


def runnable_here(kernel_cls):
    """The kernel class with its platform gate lifted, for interpreter runs on CPU tensors (the
    real class still refuses a CPU platform: see test_gates.py). Tests only."""
    return type(kernel_cls.__name__, (kernel_cls,), {"is_supported": classmethod(lambda cls, platform=None: (True, None))})


interpreter_only = pytest.mark.skipif(HAS_CUDA, reason="interpreter tests run on CPU-only machines; the GPU tests cover CUDA")

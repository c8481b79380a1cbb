"""Without a GPU, the triton provider's kernels run through Triton's CPU interpreter: the variable
must be set before any @triton.jit module is imported (they are imported lazily, at first use)."""

import os

import pytest
import torch

from qlinear.testing import gate_lifted

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")


# the kernel class with its platform gate lifted, for interpreter runs on CPU tensors (the real class
# still refuses a CPU platform: see test_gates.py)
runnable_here = gate_lifted


interpreter_only = pytest.mark.skipif(HAS_CUDA, reason="interpreter tests run on CPU-only machines; the GPU tests cover CUDA")

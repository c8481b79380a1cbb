"""Tensor-parallel layers on 2 GPUs over NCCL (marker gpu; skipped without 2 CUDA devices): every
scheme on the Llama-3-8B block's linears (qkv and gate_up column-parallel and fused, o and down
row-parallel) matches the single-GPU layer on the same weights within the family's tolerance,
and the float64 reference of the sharded computation."""

from __future__ import annotations

import os

import pytest
import torch

from qlinear.parallel_testing import LLAMA3_8B, TP_SCHEMES, check_schemes, spawn

pytestmark = pytest.mark.gpu

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast off on the lent machines
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")


def _two_gpus():
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA devices")


@pytest.mark.parametrize("schemes", [TP_SCHEMES[:7], TP_SCHEMES[7:]], ids=["mp-int8", "fp8-fp4"])
def test_two_gpus_match_one_gpu_llama3_8b(schemes):
    _two_gpus()
    rows = spawn(check_schemes, world=2, backend="nccl", timeout=280, schemes=schemes, layers=LLAMA3_8B, m=16,
                 device="cuda")[0]
    assert len(rows) == 4 * len(schemes)
    bad = [r for r in rows if not r["ok"]]
    assert not bad, bad


def test_two_gpus_decode_size_rows():
    """M = 1 (decode) through the same check, W4A16 and FP8 (the GEMV paths differ from M = 16)."""
    _two_gpus()
    rows = spawn(check_schemes, world=2, backend="nccl", timeout=200, schemes=("w4a16-g128", "fp8-dynamic"),
                 layers=LLAMA3_8B, m=1, device="cuda")[0]
    bad = [r for r in rows if not r["ok"]]
    assert not bad, bad

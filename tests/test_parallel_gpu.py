"""Tensor-parallel layers on 2 GPUs over NCCL (marker gpu; skipped without 2 CUDA devices): every
scheme on the Llama-3-8B block's linears (qkv and gate_up column-parallel and fused, o and down
row-parallel) matches the single-GPU layer on the same weights within the family's tolerance, and
the float64 reference of the sharded computation. (bench/tp_step.py also checks the whole decode
step, 2 GPUs vs 1, at M = 1 and 16.)"""

from __future__ import annotations

import os

import pytest
import torch

from qlinear.parallel_testing import LLAMA3_8B, TP_SCHEMES, check_schemes, spawn

pytestmark = pytest.mark.gpu

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast off on the lent machines
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")


def test_two_gpus_match_one_gpu_llama3_8b_every_scheme():
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA devices")
    rows = spawn(check_schemes, world=2, backend="nccl", timeout=200, schemes=TP_SCHEMES, layers=LLAMA3_8B, m=16,
                 device="cuda")[0]
    for r in rows:  # the table, in the log
        print(f"{r['scheme']:<22}{r['layer']:<9}{r['kind']:<8}{r['kernel']:<48}exact={r['exact']!s:<6}"
              f"vs1={r['err_vs_single']:.2e} vsref={r['err_vs_reference']:.2e} tol={r['tol']:.0e} {'PASS' if r['ok'] else 'FAIL'}")
    assert len(rows) == 4 * len(TP_SCHEMES)
    bad = [r for r in rows if not r["ok"]]
    assert not bad, bad

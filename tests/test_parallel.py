"""Tensor-parallel layers: sharding rules (single process) and 2 gloo processes running every scheme,
column- and row-parallel, against the single-process layer. On the CPU kernels the column split is
bit-exact (each rank computes its output columns exactly as one process does); a row split sums
partial outputs rounded to bf16, so it matches within the family's tolerance."""

from __future__ import annotations

import pytest
import torch

from qlinear.formats import dequantize_weight, reference_linear
from qlinear.layers import expected_params, quantize_layer_params
from qlinear.nn import QuantLinear, scheme_config
from qlinear.parallel import ColumnParallelQuantLinear, RowParallelQuantLinear
from qlinear.parallel_testing import SMALL, TP_SCHEMES, check_schemes, spawn
from qlinear.sharding import ShardingError, partition_config, shard_params
from qlinear.testing import TOLERANCE


@pytest.fixture(autouse=True)
def _eager_torch_kernels(monkeypatch):
    """The torch provider compiles its activation-quantization chains at load time (seconds per
    layer on 2 cores, paid again in each spawned rank); the TP layers are checked against the same
    kernel either way, so this file runs them eager (the spawned ranks inherit the variable)."""
    monkeypatch.setenv("QLINEAR_TORCH_COMPILE", "0")


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


# ---- per-rank configs and refusals -------------------------------------------------------------
@pytest.mark.parametrize("scheme,kind,n,k,needle", [
    ("w4a16-g128", "row", 256, 384, "group_size=128"),          # K slice 192 splits a group
    ("awq-g128", "column", 24, 256, "zero points pack 8"),     # N slice 12 splits a packed zero-point word
    ("w4a16-ch", "row", 256, 24, "pack 8 per int32"),           # K slice 12 splits a packed int4 word
    ("fp8-block", "column", 384, 256, "128x128 weight scale block"),
    ("fp8-block", "row", 256, 384, "1x128 activation group"),
    ("nvfp4", "row", 64, 48, "16 elements along K"),
    ("mxfp4", "row", 64, 96, "32 elements along K"),
    ("int8-dynamic", "row", 64, 63, "do not split evenly"),
])
def test_refused_splits_name_the_reason(scheme, kind, n, k, needle):
    with pytest.raises(ShardingError, match=needle):
        partition_config(scheme_config(scheme, n, k), kind, 2)


def test_partition_configs_carry_the_slice_shape():
    c = scheme_config("w4a16-g128-actorder", 512, 1024)
    col, row = partition_config(c, "column", 2), partition_config(c, "row", 2)
    assert col.partition_weight_shape == (1024, 256) and col.is_k_full
    assert row.partition_weight_shape == (512, 512) and not row.is_k_full and row.full_weight_shape == (1024, 512)
    # a row slice without act-order owns its groups: K full in vLLM's sense
    assert partition_config(scheme_config("w4a16-g128", 512, 1024), "row", 2).is_k_full
    # the act-order row slice keeps the whole scale table (vLLM marlin_repeat_scales_on_all_ranks)
    assert expected_params(row)["weight_scale"][0] == (512, 8)
    fp8 = partition_config(scheme_config("fp8-block", 512, 1024), "row", 2)
    assert fp8.weight_shape == (512, 512) and expected_params(fp8)["weight_scale_inv"][0] == (4, 4)


def test_fused_parts_must_split_evenly():
    with pytest.raises(ShardingError, match="part of 3 features"):
        partition_config(scheme_config("fp8-dynamic", 131, 64), "column", 2, output_sizes=[128, 3])
    with pytest.raises(ShardingError, match="output_sizes"):
        partition_config(scheme_config("fp8-dynamic", 128, 64), "column", 2, output_sizes=[64, 60])


def test_shards_reassemble_the_full_weight():
    """The rank slices, dequantized, are exactly the full layer's slices, for every scheme."""
    torch.manual_seed(0)
    for scheme in TP_SCHEMES:
        c = scheme_config(scheme, 256, 512)
        p = quantize_layer_params(c, torch.randn(256, 512), calib_x=torch.randn(4, 512))
        wf = dequantize_weight(c, p)
        col = torch.cat([dequantize_weight(*shard_params(c, p, "column", r, 2)) for r in range(2)], 0)
        row = torch.cat([dequantize_weight(*shard_params(c, p, "row", r, 2)) for r in range(2)], 1)
        assert torch.equal(col, wf), scheme
        assert torch.equal(row, wf), scheme


# ---- fused modules from per-part parameters (as checkpoints store q/k/v) -----------------------------
def _parts(scheme, widths, k=256, seed=0):
    torch.manual_seed(seed)
    out = []
    for i, n in enumerate(widths):
        c = scheme_config(scheme, n, k)
        w = torch.randn(n, k) * (1 + i)  # different magnitudes: different per-tensor scales
        out.append((c, w, quantize_layer_params(c, w, calib_x=torch.randn(4, k) * (1 + i))))
    return out


def test_fused_fp8_per_tensor_takes_the_max_scale():
    parts = _parts("fp8-tensor", [256, 128, 128])
    c = scheme_config("fp8-tensor", 512, 256)
    x = torch.randn(4, 256, dtype=torch.bfloat16)
    for r in range(2):
        rc, rp = shard_params(c, [p for _, _, p in parts], "column", r, 2)
        smax = max(float(p["weight_scale"]) for _, _, p in parts)
        assert float(rp["weight_scale"]) == smax and float(rp["input_scale"]) == max(float(p["input_scale"]) for _, _, p in parts)
        # each part's slice, dequantized, stays within one E4M3 rounding of the part's own weight
        w = dequantize_weight(rc, rp)
        want = torch.cat([dequantize_weight(pc, pp)[r * pc.weight_shape[0] // 2:(r + 1) * pc.weight_shape[0] // 2]
                          for pc, _, pp in parts])
        assert _rel(w, want) < 0.07
        assert QuantLinear(rc, rp)(x).shape == (4, 256)


def test_fused_int8_per_tensor_becomes_channelwise_exactly():
    parts = []
    torch.manual_seed(1)
    for i, n in enumerate([128, 128]):
        c = scheme_config("int8-dynamic", n, 256)
        c = type(c)(False, False, True, (n, 256))  # per-tensor weight scales
        parts.append((c, quantize_layer_params(c, torch.randn(n, 256) * (1 + i))))
    full = type(parts[0][0])(False, False, True, (256, 256))
    for r in range(2):
        rc, rp = shard_params(full, [p for _, p in parts], "column", r, 2)
        assert rc.is_channelwise and rp["weight_scale"].shape == (128, 1)
        want = torch.cat([dequantize_weight(pc, pp)[r * 64:(r + 1) * 64] for pc, pp in parts])
        assert torch.equal(dequantize_weight(rc, rp), want)


def test_fused_nvfp4_refuses_different_global_scales():
    parts = _parts("nvfp4", [128, 128])
    with pytest.raises(ShardingError, match="weight_global_scale"):
        shard_params(scheme_config("nvfp4", 256, 256), [p for _, _, p in parts], "column", 0, 2)


def test_fused_act_order_refuses_different_g_idx():
    parts = _parts("w4a16-g128-actorder", [128, 128])
    with pytest.raises(ShardingError, match="weight_g_idx"):
        shard_params(scheme_config("w4a16-g128-actorder", 256, 256), [p for _, _, p in parts], "column", 0, 2)


# ---- layers built without a process group (rank/world given) -----------------------------------------
def test_layers_without_a_group_and_from_quant_linear():
    torch.manual_seed(2)
    lin = torch.nn.Linear(256, 256).bfloat16()
    x = torch.randn(3, 256, dtype=torch.bfloat16)
    q = QuantLinear.from_linear(lin, "w4a16-g128", keep_loaded_params=True)
    cols = [ColumnParallelQuantLinear.from_quant_linear(q, rank=r, world_size=2) for r in range(2)]
    assert torch.equal(torch.cat([m(x) for m in cols], -1), q(x))
    rows = [RowParallelQuantLinear.from_linear(lin, "w4a16-g128", rank=r, world_size=2, reduce_results=False)
            for r in range(2)]
    y = rows[0](x[:, :128]) + rows[1](x[:, 128:])  # rank 0 adds the bias when the caller reduces
    assert _rel(y, q(x)) < TOLERANCE["mp"]
    with pytest.raises(ValueError, match="keep_loaded_params"):
        ColumnParallelQuantLinear.from_quant_linear(QuantLinear.from_linear(lin, "w4a16-g128"), rank=0, world_size=2)
    with pytest.raises(ValueError, match="not initialized"):
        ColumnParallelQuantLinear.from_linear(lin, "w4a16-g128")
    with pytest.raises(ValueError, match="bias.shape"):
        RowParallelQuantLinear(q.config, q.loaded_params, torch.zeros(1, dtype=torch.bfloat16), rank=0, world_size=2)


def test_act_order_row_slice_on_every_kernel_here():
    """is_k_full False: kernels that take it must match the reference; others must refuse it."""
    from qlinear.selection import select

    torch.manual_seed(3)
    c = scheme_config("w4a16-g128-actorder", 256, 512)
    p = quantize_layer_params(c, torch.randn(256, 512))
    rc, rp = shard_params(c, p, "row", 1, 2)
    x = torch.randn(5, 256, dtype=torch.bfloat16)
    ref = reference_linear(rc, rp, x)
    sel = select(rc, evaluate_all=True)
    assert sel.viable, sel.explain()
    for kern in sel.viable:
        layer = QuantLinear(rc, dict(rp), kernel=kern)
        assert _rel(layer(x), ref) < TOLERANCE["mp"], kern.full_name()


# ---- checkpoint shards: each rank reads only its slice ---------------------------------------------------
def _checkpoint_layout(c, p):
    return {k: (v.t().contiguous() if c.family in ("int8", "fp8") and k == "weight" else v.contiguous())
            for k, v in p.items() if k != "azp_adj"}


class _Recorder:
    """A lazy view that logs every index read (to prove a rank reads only its slice)."""

    def __init__(self, t, log, name):
        self.t, self.log, self.name = t, log, name

    def get_shape(self):
        return list(self.t.shape)

    def __getitem__(self, idx):
        self.log.append((self.name, idx))
        return self.t[idx]


def test_lazy_views_read_only_the_rank_slice():
    c = scheme_config("w4a16-g128", 256, 512)
    p = _checkpoint_layout(c, quantize_layer_params(c, torch.randn(256, 512)))
    log = []
    rc, rp = shard_params(c, {k: _Recorder(v, log, k) for k, v in p.items()}, "row", 1, 2, layout="checkpoint")
    reads = dict(log)
    assert reads["weight_packed"] == (slice(None), slice(32, 64))  # K 256..512 = words 32..64
    assert reads["weight_scale"] == (slice(None), slice(2, 4))
    eager = shard_params(c, p, "row", 1, 2, layout="checkpoint")[1]
    assert all(torch.equal(rp[k], eager[k]) for k in eager)


def test_safetensors_checkpoint_loads_into_shards(tmp_path):
    safetensors = pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    torch.manual_seed(4)
    x = torch.randn(4, 256, dtype=torch.bfloat16)
    for scheme in ("w4a16-g128-actorder", "awq-g128", "int8-static-asym", "fp8-block", "nvfp4"):
        c = scheme_config(scheme, 256, 256)
        p = quantize_layer_params(c, torch.randn(256, 256), calib_x=x)
        path = tmp_path / f"{scheme}.safetensors"
        save_file(_checkpoint_layout(c, p), str(path))
        full = QuantLinear(c, dict(p))
        outs = []
        with safetensors.safe_open(str(path), "pt") as f:
            views = {k: f.get_slice(k) for k in f.keys()}
            for r in range(2):
                rc, rp = shard_params(c, views, "column", r, 2, layout="checkpoint")
                outs.append(QuantLinear(rc, rp)(x))
        assert torch.equal(torch.cat(outs, -1), full(x)), scheme


# ---- two gloo processes ---------------------------------------------------------------------------
def _gloo_worker(rank, world, ckpt):
    """Every scheme on the Llama-block layers (small), plus a checkpoint read straight into shards."""
    import torch.distributed as dist
    from safetensors import safe_open

    rows = check_schemes(rank, world, TP_SCHEMES, SMALL, m=4)
    c = scheme_config("w4a16-g128", 256, 256)
    with safe_open(ckpt, "pt") as f:
        tp = RowParallelQuantLinear(c, {k: f.get_slice(k) for k in f.keys()}, layout="checkpoint")
    x = torch.load(ckpt + ".x")
    y = tp(x[:, rank * 128:(rank + 1) * 128])
    ys = [torch.empty_like(y) for _ in range(world)]
    dist.all_gather(ys, y)
    return rows, y, all(torch.equal(ys[0], t) for t in ys)


def test_two_gloo_ranks_every_scheme(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    torch.manual_seed(5)
    c = scheme_config("w4a16-g128", 256, 256)
    p = quantize_layer_params(c, torch.randn(256, 256))
    ckpt = str(tmp_path / "down.safetensors")
    save_file(_checkpoint_layout(c, p), ckpt)
    x = torch.randn(3, 256, dtype=torch.bfloat16)
    torch.save(x, ckpt + ".x")
    results = spawn(_gloo_worker, world=2, backend="gloo", timeout=240, ckpt=ckpt)
    rows = results[0][0]
    assert {r["scheme"] for r in rows} == set(TP_SCHEMES) and len(rows) == 4 * len(TP_SCHEMES)
    bad = [r for r in rows if not r["ok"]]
    assert not bad, bad
    # column-parallel: bit-exact with the single-process layer on these CPU kernels
    assert all(r["exact"] for r in rows if r["kind"] == "column"), [r for r in rows if r["kind"] == "column" and not r["exact"]]
    # both ranks hold the same reduced output, and it matches one process within the family tolerance
    assert results[0][2] and results[1][2]
    assert _rel(results[0][1], QuantLinear(c, dict(p))(x)) < TOLERANCE["mp"]


def test_every_family_describes_its_split():
    """sharding.py reads the split rules from the family descriptors: a family without them is refused."""
    from qlinear.families import all_families

    assert all(f.sharding is not None for f in all_families().values())

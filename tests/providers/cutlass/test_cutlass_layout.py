"""CPU tests of the load-time re-lays (pure torch), the tile choice and the JIT build key / cache."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import cuda_jit  # noqa: E402
from qlinear_cutlass import build, configs  # noqa: E402
from qlinear_cutlass.scaled_mm import as_rows, column_sums, flat_scale, one_float, one_int, weight_nk  # noqa: E402


def test_weight_nk_no_copy_for_the_loaded_view_and_copy_otherwise():
    w = torch.randint(-128, 127, (64, 32), dtype=torch.int8)  # [N, K]
    loaded = w.t()  # as loaded: [K, N] view
    out = weight_nk(loaded, torch.int8, "weight")
    assert out.data_ptr() == w.data_ptr() and out.is_contiguous() and torch.equal(out, w)
    dense_kn = w.t().contiguous()  # a contiguous [K, N]: must be transposed into storage
    out2 = weight_nk(dense_kn, torch.int8, "weight")
    assert out2.is_contiguous() and torch.equal(out2, w)


def test_weight_nk_bad_dtype_and_rank():
    with pytest.raises(ValueError, match="weight.dtype: expected float8_e4m3fn"):
        weight_nk(torch.zeros(4, 4, dtype=torch.int8), torch.float8_e4m3fn, "weight")
    with pytest.raises(ValueError, match="weight.shape"):
        weight_nk(torch.zeros(4, dtype=torch.int8), torch.int8, "weight")


def test_flat_scale_shapes():
    assert flat_scale(torch.tensor(0.5), 8, "s").tolist() == [0.5]
    s = torch.arange(8, dtype=torch.float16).reshape(8, 1)
    f = flat_scale(s, 8, "s")
    assert f.dtype == torch.float32 and f.shape == (8,) and f.tolist() == list(range(8))
    fused = flat_scale(torch.tensor([1.0, 2.0, 3.0]), 6, "s", logical_widths=[1, 2, 3])
    assert fused.tolist() == [1, 2, 2, 3, 3, 3]
    with pytest.raises(ValueError, match=r"s.shape: expected \[1\] or \[8, 1\]"):
        flat_scale(torch.ones(3), 8, "s")
    with pytest.raises(ValueError, match="s: the layer has no weight scale"):
        flat_scale(None, 8, "s")


def test_static_scalars():
    assert one_float(torch.tensor([0.25, 0.5]), "input_scale", "x").tolist() == [0.5]  # fused parts: the max
    with pytest.raises(ValueError, match="input_scale: a static scheme needs it"):
        one_float(None, "input_scale", "a static scheme")
    z = one_int(torch.tensor([3.0]), "input_zero_point", "x")
    assert z.dtype == torch.int32 and z.tolist() == [3]
    with pytest.raises(ValueError, match="input_zero_point"):
        one_int(torch.tensor([1, 2]), "input_zero_point", "x")


def test_column_sums_exact_and_checked():
    w = torch.randint(-128, 128, (48, 4096), dtype=torch.int8)  # [N, K]
    adj = column_sums(None, w, "azp_adj")
    assert adj.dtype == torch.int32 and torch.equal(adj, w.long().sum(1).int())
    given = column_sums(torch.arange(48).reshape(1, 48), w, "azp_adj")
    assert given.tolist() == list(range(48))
    with pytest.raises(ValueError, match="azp_adj.shape: expected N=48"):
        column_sums(torch.ones(47), w, "azp_adj")


def test_as_rows_keeps_aligned_rows_and_fixes_others():
    x = torch.randn(3, 5, 64, dtype=torch.bfloat16)
    r = as_rows(x, 64)
    assert r.shape == (15, 64) and r.data_ptr() == x.data_ptr()
    sliced = torch.randn(4, 72, dtype=torch.bfloat16)[:, :64]  # row stride 72: 144 bytes, aligned
    assert as_rows(sliced, 64).data_ptr() == sliced.data_ptr()
    odd = torch.randn(4, 65, dtype=torch.bfloat16)[:, 1:]  # misaligned start and stride
    fixed = as_rows(odd, 64)
    assert fixed.is_contiguous() and fixed.data_ptr() % 16 == 0 and torch.equal(fixed, odd)


def test_tile_buckets(monkeypatch):
    assert [configs.tile_for(m) for m in (1, 16, 64, 65, 128, 129, 4096)] == [0, 0, 0, 1, 1, 2, 2]
    monkeypatch.setenv("QLINEAR_CUTLASS_TILE", "large")
    assert configs.forced() == configs.LARGE
    monkeypatch.setenv("QLINEAR_CUTLASS_TILE", "huge")
    with pytest.raises(ValueError, match="QLINEAR_CUTLASS_TILE"):
        configs.forced()


def test_sources_listed_exist():
    every = tuple(f for srcs, hdrs, _ in build.EXTENSIONS.values() for f in srcs + hdrs)
    for name in every:
        assert (build.CSRC / name).is_file(), name
    listed = set(every)
    # W8A8, W4A16 and NVFP4 share only the helper headers; W8A16 shares W4A16's headers (one GEMM
    # template, its checks and dispatch, the decode kernel) but no source; W4A8 also takes the quantizers (act_quant)
    # from W8A8 and the int4 layout and mixed-input tiles from W4A16. W4A16 and W8A16 are one
    # extension per activation dtype: the two share their binding and headers, no GEMM.
    ext = {name: set(s + h) for name, (s, h, _) in build.EXTENSIONS.items()}
    for fam in ("w4a16", "w8a16"):
        assert ext[f"{fam}-bf16"] & ext[f"{fam}-fp16"] == {f"{fam}_binding.cpp", *build.MIXED_INPUT_HEADERS}
    w16, w816 = ext["w4a16-bf16"] | ext["w4a16-fp16"], ext["w8a16-bf16"] | ext["w8a16-fp16"]
    w8, w4a8, nv = ext["w8a8"], ext["w4a8"], ext["nvfp4"]
    assert w8 & w16 == w8 & nv == w16 & nv == w4a8 & nv == w8 & w816 == set(build.SHARED_HEADERS)
    assert w16 & w816 == set(build.MIXED_INPUT_HEADERS)
    assert w4a8 & w8 == {"act_quant.cu", "act_quant.h", *build.SHARED_HEADERS}
    assert w4a8 & w16 == {"w4a16_layout.h", "mixed_input_tiles.h", *build.SHARED_HEADERS}
    on_disk = {p.name for p in build.CSRC.iterdir() if p.suffix in (".cu", ".cuh", ".h", ".cpp")}
    assert on_disk == listed  # a new source must enter the build and the cache key


def test_build_key_follows_sources_and_toolchain(monkeypatch, tmp_path):
    files = [tmp_path / "a.cu", tmp_path / "b.h"]
    files[0].write_text("x")
    files[1].write_text("y")
    k1 = cuda_jit.source_key(files, "nvcc=13.0")
    assert k1 == cuda_jit.source_key(files, "nvcc=13.0") and len(k1) == 16
    assert k1 != cuda_jit.source_key(files, "nvcc=12.8")
    files[1].write_text("y2")
    assert k1 != cuda_jit.source_key(files, "nvcc=13.0")
    monkeypatch.setenv("QLINEAR_CUTLASS_CACHE", str(tmp_path / "c"))
    assert cuda_jit.cache_root("cutlass") == tmp_path / "c"


def test_nvcc_version_of_a_missing_binary_is_unknown(tmp_path):
    assert cuda_jit.nvcc_version(str(tmp_path / "no-nvcc")) == "unknown"


def test_block_weight_relay_checks_and_contiguity():
    from qlinear_cutlass.fp8_block import CutlassFp8BlockScaledMMLinearKernel as BLOCK, relay_block_weight

    layer = torch.nn.Module()
    w = torch.randn(512, 256).to(torch.float8_e4m3fn)  # [K, N] -> a non-contiguous [N, K] view below
    layer.register_parameter("weight", torch.nn.Parameter(w.t(), requires_grad=False))
    layer.register_parameter("weight_scale_inv", torch.nn.Parameter(torch.rand(2, 4, dtype=torch.bfloat16), requires_grad=False))
    name, nk = relay_block_weight(BLOCK, layer, (256, 512))
    assert name == "weight_scale_inv" and nk == (256, 512)
    assert layer.weight.is_contiguous() and torch.equal(layer.weight.view(torch.uint8), w.t().contiguous().view(torch.uint8))
    assert layer.weight_scale_inv.dtype == torch.float32 and layer.weight_scale_inv.is_contiguous()
    with pytest.raises(ValueError, match=r"weight_scale_inv.shape: expected \(2, 4\)"):
        bad = torch.nn.Module()
        bad.register_parameter("weight", torch.nn.Parameter(w.t().contiguous(), requires_grad=False))
        bad.register_parameter("weight_scale_inv", torch.nn.Parameter(torch.rand(2, 5), requires_grad=False))
        relay_block_weight(BLOCK, bad, (256, 512))
    with pytest.raises(ValueError, match="weight: expected float8_e4m3fn"):
        bad = torch.nn.Module()
        bad.register_parameter("weight", torch.nn.Parameter(torch.zeros(256, 512), requires_grad=False))
        relay_block_weight(BLOCK, bad, (256, 512))

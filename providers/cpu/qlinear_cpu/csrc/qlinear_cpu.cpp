// qlinear CPU kernels: AMX tiles (bf16 and int8) on Intel Xeon (Sapphire Rapids and later).
//
// One translation unit, compiled at first use by qlinear_cpu/build.py. Python only calls these
// functions after checking the CPU flags (amx_tile, amx_bf16, amx_int8, avx512_bf16), because the
// whole unit is compiled with -mamx-* / -mavx512* and would fault on an older CPU.
//
// Two GEMMs:
//   gemm_dq  : bf16 activations x weights stored as 4-bit codes, 8-bit codes or FP8 E4M3, expanded
//              to bf16 VNNI tiles in a per-thread buffer and multiplied with _tile_dpbf16ps. Scales
//              (and zero points) are applied per K group to the fp32 tile results, so the tiles see
//              exact small integers (int4/int8) or exact fp8 values.
//   gemm_i8  : activations quantized to int8 here (dynamic per row or static, sym or asym), weights
//              int8 pre-laid in the VNNI-4 tile layout, multiplied with _tile_dpbssd.
// Both split N into blocks of 32 columns (two 16-column tiles) over threads; every output element is
// computed by one thread in one fixed order, so results do not depend on the thread count.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int NB = 32;          // output columns per block (two B tiles of 16)
constexpr int TILE_BYTES = 1024;  // 16 rows x 64 bytes

// ---- AMX setup -----------------------------------------------------------------------------------
constexpr int ARCH_REQ_XCOMP_PERM = 0x1023;
constexpr int XFEATURE_XTILEDATA = 18;

bool request_amx() {
  // Linux only lets a process use the AMX tile state after asking for it once (per process).
  return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Tiles: 0, 1 = A (rows r0, r1; kb bytes of K each); 2, 3 = B (kb / 4 rows); 4, 5 = C for A0;
// 6, 7 = C for A1. kb is 64 (32 bf16 or 64 int8 K values) except for W4A8 with 32-deep groups.
void configure_tiles(int r0, int r1, int kb) {
  TileConfig c;
  std::memset(&c, 0, sizeof c);
  c.palette = 1;
  auto set = [&](int t, int rows, int cols = 64) { c.rows[t] = (uint8_t)rows; c.colsb[t] = (uint16_t)cols; };
  set(0, r0, kb);
  set(2, kb / 4);
  set(3, kb / 4);
  set(4, r0);
  set(5, r0);
  // with one row block (r1 == 0) tiles 1, 6, 7 take r0 rows: the int8 kernel then splits K over
  // two accumulator pairs (even / odd chunks) instead of leaving them idle
  const int rb = r1 > 0 ? r1 : r0;
  set(1, rb, kb);
  set(6, rb);
  set(7, rb);
  _tile_loadconfig(&c);
}

// Per-thread tile configuration; re-loaded at the start of every parallel chunk (other libraries,
// oneDNN among them, configure tiles on the same threads between our calls).
struct TileState {
  int r0 = -1, r1 = -1, kb = -1;
  void set(int a, int b, int k = 64) {
    if (a != r0 || b != r1 || k != kb) {
      configure_tiles(a, b, k);
      r0 = a;
      r1 = b;
      kb = k;
    }
  }
  ~TileState() { if (r0 >= 0) _tile_release(); }
};

// The C tiles 4-7: rows 0-15 (tiles 4, 5: columns 0-15, 16-31) and, when the block has a second
// 16 rows (r1), rows 16-31 (tiles 6, 7).
inline void zero_c_tiles(bool r1) {
  _tile_zero(4);
  _tile_zero(5);
  if (r1) { _tile_zero(6); _tile_zero(7); }
}
// ... stored to ctmp, [32][NB] 4-byte sums (fp32 or int32).
template <class T>
inline void store_c_tiles(T* ctmp, bool r1) {
  static_assert(sizeof(T) == 4, "C tiles hold 4-byte sums");
  _tile_stored(4, ctmp, NB * 4);
  _tile_stored(5, ctmp + 16, NB * 4);
  if (r1) {
    _tile_stored(6, ctmp + 16 * NB, NB * 4);
    _tile_stored(7, ctmp + 16 * NB + 16, NB * 4);
  }
}

// Lane masks of a 32-column block's two 16-column halves when only `cols` of its columns exist (the
// last block of a layer whose N is not a multiple of 32).
inline void block_masks(int64_t cols, __mmask16& k0, __mmask16& k1) {
  k0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
  k1 = cols >= 32 ? (__mmask16)0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : (__mmask16)0;
}

void* aligned_buf(size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  TORCH_CHECK(p != nullptr, "qlinear_cpu: out of memory for a ", bytes, "-byte buffer");
  return p;
}
struct Buf {
  void* p;
  explicit Buf(size_t bytes) : p(aligned_buf(bytes)) {}
  ~Buf() { std::free(p); }
  template <class T> T* as() { return static_cast<T*>(p); }
};

// Software prefetch of every cache line of [p, p + bytes): the packed weights are one stream per
// thread, and the hardware prefetcher alone leaves single-core bandwidth on the table.
inline void prefetch_lines(const void* p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch((const char*)p + o, _MM_HINT_T0);
}
constexpr int64_t PREFETCH_AHEAD = 4096;  // bytes of the weight stream requested ahead

// ---- weight expansion to bf16 VNNI rows ----------------------------------------------------------
// A B tile row holds 16 columns x 2 consecutive K values, 32 bf16 (64 bytes), in the order
// (n0,k0) (n0,k1) (n1,k0) ... The packed weights store each row's 32 codes in that same order.
enum WKind : int64_t { W_INT4 = 0, W_FP8 = 1, W_INT8 = 2 };

inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return (uint16_t)(u >> 16);  // exact for the small values used in the tables
}

// int4: 16 rows come from 8 x 32 bytes; byte j of pair p holds row 2p's element j in its low
// nibble and row 2p+1's in its high nibble. vpermw looks up 5 index bits, so the 16-entry table
// (code - 8) is stored twice and the low nibble needs no masking.
inline void expand_int4_tile(const uint8_t* src, uint16_t* dst, __m512i table) {
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) {
    __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i*)(src + p * 32)));
    _mm512_store_si512((__m512i*)(dst + (2 * p) * 32), _mm512_permutexvar_epi16(v, table));
    _mm512_store_si512((__m512i*)(dst + (2 * p + 1) * 32), _mm512_permutexvar_epi16(_mm512_srli_epi16(v, 4), table));
  }
}

// FP8 E4M3 -> bf16, exactly, by table: the bf16 bit pattern of each of the 128 magnitudes (sign
// bit clear) is split into its low and its high byte, two 128-byte tables of two zmm each. vpermi2b
// looks up 64 codes at once from their low 7 bits (the sign bit is ignored), the sign is or-ed into
// the high byte, and unpacking low / high bytes yields the 16-bit lanes: 5 instructions per 64
// weights, subnormals included. vpunpck{l,h}bw interleave within 128-bit lanes, so the packer stores
// each pair of tile rows pre-shuffled (pack.pack_fp8): the unpacked halves are rows 2p and 2p+1.
struct Fp8Tables {
  __m512i lo0, lo1, hi0, hi1;
  Fp8Tables() {
    alignas(64) uint8_t lo[128], hi[128];
    for (int c = 0; c < 128; ++c) {
      const int e = c >> 3, m = c & 7;
      const float v = c == 127 ? std::nanf("") : e == 0 ? std::ldexp((float)m, -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
      const uint16_t b = bf16_bits(v);
      lo[c] = (uint8_t)(b & 0xFF);
      hi[c] = (uint8_t)(b >> 8);
    }
    lo0 = _mm512_load_si512((const __m512i*)lo);
    lo1 = _mm512_load_si512((const __m512i*)(lo + 64));
    hi0 = _mm512_load_si512((const __m512i*)hi);
    hi1 = _mm512_load_si512((const __m512i*)(hi + 64));
  }
  // 64 packed codes -> tile rows 2p (r0) and 2p+1 (r1), 32 bf16 each
  inline void expand(const uint8_t* src, __m512i& r0, __m512i& r1) const {
    const __m512i v = _mm512_loadu_si512((const __m512i*)src);
    const __m512i lo = _mm512_permutex2var_epi8(lo0, v, lo1);
    __m512i hi = _mm512_permutex2var_epi8(hi0, v, hi1);
    hi = _mm512_ternarylogic_epi32(hi, v, _mm512_set1_epi8((char)0x80), 0xF8);  // hi | (v & 0x80)
    r0 = _mm512_unpacklo_epi8(lo, hi);
    r1 = _mm512_unpackhi_epi8(lo, hi);
  }
};

inline void expand_fp8_tile(const uint8_t* src, uint16_t* dst, const Fp8Tables& t) {
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) {
    __m512i r0, r1;
    t.expand(src + p * 64, r0, r1);
    _mm512_store_si512((__m512i*)(dst + (2 * p) * 32), r0);
    _mm512_store_si512((__m512i*)(dst + (2 * p + 1) * 32), r1);
  }
}

// int8 codes (already shifted to signed) -> bf16 through fp32 (exact for |q| <= 256).
inline void expand_int8_tile(const uint8_t* src, uint16_t* dst) {
#pragma GCC unroll 4
  for (int r = 0; r < 16; ++r) {
    __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(src + r * 32))));
    __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(src + r * 32 + 16))));
    _mm512_store_si512((__m512i*)(dst + r * 32), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}

// bytes of one packed B tile (16 rows x 32 weights)
inline int64_t packed_tile_bytes(int64_t kind) { return kind == W_INT4 ? 256 : 512; }

// ---- output stores -------------------------------------------------------------------------------
// out_kind: 0 bf16, 1 fp16, 2 fp32
inline void store_row(void* out, int64_t out_kind, int64_t idx, __m512 v, __mmask16 mask) {
  if (out_kind == 0) {
    _mm256_mask_storeu_epi16((uint16_t*)out + idx, mask, (__m256i)_mm512_cvtneps_pbh(v));
  } else if (out_kind == 1) {
    _mm256_mask_storeu_epi16((uint16_t*)out + idx, mask, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    _mm512_mask_storeu_ps((float*)out + idx, mask, v);
  }
}

int64_t out_kind_of(const at::Tensor& t) {
  if (t.scalar_type() == at::kBFloat16) return 0;
  if (t.scalar_type() == at::kHalf) return 1;
  TORCH_CHECK(t.scalar_type() == at::kFloat, "qlinear_cpu: output dtype must be bf16, fp16 or fp32");
  return 2;
}

const float* opt_f32(const std::optional<at::Tensor>& t, const char* name) {
  if (!t.has_value()) return nullptr;
  TORCH_CHECK(t->scalar_type() == at::kFloat && t->is_contiguous(), name, ": must be contiguous float32");
  return t->data_ptr<float>();
}

}  // namespace

bool amx_init() { return request_amx(); }

// ---- a few rows, int4 / fp8: AVX-512 BF16 dot products straight from registers ------------------
// (written for up to 4 rows.) For tiny M the AMX path's fixed costs (expanded tiles written to and read back from L1, a tile op
// per 1-row product, per-group tile stores) dominate; here each expanded row goes from the lookup
// straight into vdpbf16ps against the broadcast activation pair. Even and odd tile rows accumulate
// separately (more independent chains), summed at the group end in a fixed order.
// The weight expansions the vector path takes: rows 2p and 2p+1 of one packed B tile as bf16.
struct Int4Rows {
  static constexpr int64_t TB = 256;  // packed bytes per tile
  __m512i table;
  inline void operator()(const uint8_t* tile, int p, __m512bh& wa, __m512bh& wb) const {
    __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i*)(tile + p * 32)));
    wa = (__m512bh)_mm512_permutexvar_epi16(v, table);
    wb = (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(v, 4), table);
  }
};
struct Fp8Rows {
  static constexpr int64_t TB = 512;
  const Fp8Tables* t;
  inline void operator()(const uint8_t* tile, int p, __m512bh& wa, __m512bh& wb) const {
    __m512i a, b;
    t->expand(tile + p * 64, a, b);
    wa = (__m512bh)a;
    wb = (__m512bh)b;
  }
};

template <int MR, class Rows>
void rows_block(const uint16_t* xp, int64_t ldx, const uint8_t* wblk, int64_t ngroups, int64_t gchunks,
                const float* swp, const float* zcp, const float* asum, int64_t Np, int64_t nb, const Rows& rows,
                float* acc /* [MR][32] */) {
  constexpr int64_t TB = Rows::TB;
  __m512 tot[MR][2];
  for (int m = 0; m < MR; ++m) tot[m][0] = tot[m][1] = _mm512_setzero_ps();
  for (int64_t g = 0; g < ngroups; ++g) {
    // 4 independent chains per (row, tile): even / odd tile row x even / odd row pair, so the
    // vdpbf16ps latency is hidden
    __m512 ev[MR][2][2], od[MR][2][2];
    for (int m = 0; m < MR; ++m)
      for (int t = 0; t < 2; ++t) ev[m][t][0] = ev[m][t][1] = od[m][t][0] = od[m][t][1] = _mm512_setzero_ps();
    for (int64_t kc = 0; kc < gchunks; ++kc) {
      const int64_t kchunk = g * gchunks + kc;
      const uint8_t* src = wblk + kchunk * 2 * TB;
      prefetch_lines(src + PREFETCH_AHEAD, 2 * TB);
      const int64_t k0 = kchunk * 32;
#pragma GCC unroll 8
      for (int p = 0; p < 8; ++p) {
        __m512bh xa[MR], xb[MR];
        for (int m = 0; m < MR; ++m) {
          const uint32_t* xr = (const uint32_t*)(xp + m * ldx + k0 + 4 * p);
          xa[m] = (__m512bh)_mm512_set1_epi32((int)xr[0]);  // k pair of row 2p
          xb[m] = (__m512bh)_mm512_set1_epi32((int)xr[1]);  // k pair of row 2p + 1
        }
#pragma GCC unroll 2
        for (int t = 0; t < 2; ++t) {
          __m512bh wa, wb;
          rows(src + t * TB, p, wa, wb);
          for (int m = 0; m < MR; ++m) {
            ev[m][t][p & 1] = _mm512_dpbf16_ps(ev[m][t][p & 1], xa[m], wa);
            od[m][t][p & 1] = _mm512_dpbf16_ps(od[m][t][p & 1], xb[m], wb);
          }
        }
      }
    }
    const int64_t so = (nb * ngroups + g) * NB;
    for (int t = 0; t < 2; ++t) {
      const __m512 s = _mm512_loadu_ps(swp + so + 16 * t);
      const __m512 z = zcp ? _mm512_loadu_ps(zcp + so + 16 * t) : _mm512_setzero_ps();
      for (int m = 0; m < MR; ++m) {
        __m512 c = _mm512_add_ps(_mm512_add_ps(ev[m][t][0], ev[m][t][1]), _mm512_add_ps(od[m][t][0], od[m][t][1]));
        if (zcp) c = _mm512_fmadd_ps(z, _mm512_set1_ps(-asum[m * ngroups + g]), c);
        tot[m][t] = _mm512_fmadd_ps(c, s, tot[m][t]);
      }
    }
  }
  for (int m = 0; m < MR; ++m) {
    _mm512_store_ps(acc + m * NB, tot[m][0]);
    _mm512_store_ps(acc + m * NB + 16, tot[m][1]);
  }
}

// vec_max_m (the caller's choice, up to 4): rows up to which the int4 / fp8 kernels use rows_block
// instead of AMX tiles.

// ==================================================================================================
// gemm_dq: out[M, N] = x[M, Kp] (bf16) @ W (packed codes)
//   wpack  : uint8 [Np/32, Kp/32, 2 tiles, packed tile bytes]
//   kind   : W_INT4 / W_FP8 / W_INT8
//   group  : K rows sharing one scale row (a multiple of 32 dividing Kp; Kp for per-channel)
//   sw     : f32 [Np/32, Kp/group, 32]       weight scale per (group, column), blocked like the weights
//   zc     : f32 [Np/32, Kp/group, 32] or None   code offset per (group, column): w = (code - zc) * sw
//   sxg    : f32 [M, Kp/group] or None       activation scale per (row, group) (block FP8)
//   sxr    : f32 [M] or [1] or None          activation scale per row (or one), applied at the end
//   bias   : f32 [N] or None
//   out    : [M, N] bf16 / fp16 / fp32, written
//   vec_max_m: up to this many rows (<= 4), int4 / fp8 weights take the AVX512-BF16 vector path
// ==================================================================================================
void gemm_dq(const at::Tensor& x, const at::Tensor& wpack, int64_t kind, int64_t group, const at::Tensor& sw,
             const std::optional<at::Tensor>& zc, const std::optional<at::Tensor>& sxg,
             const std::optional<at::Tensor>& sxr, const std::optional<at::Tensor>& bias, at::Tensor& out,
             int64_t vec_max_m) {
  TORCH_CHECK(vec_max_m <= 4, "vec_max_m: the vector path takes at most 4 rows");
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kBFloat16 && x.stride(1) == 1, "x: must be 2-D bf16 with unit column stride");
  const int64_t M = x.size(0), Kp = x.size(1), N = out.size(1);
  TORCH_CHECK(Kp % 32 == 0 && group % 32 == 0 && Kp % group == 0, "x.shape[1]=", Kp, " / group=", group, ": must be multiples of 32");
  TORCH_CHECK(wpack.scalar_type() == at::kByte && wpack.is_contiguous(), "wpack: must be contiguous uint8");
  const int64_t nblocks = wpack.size(0), kchunks = Kp / 32, ngroups = Kp / group, Np = nblocks * NB;
  TORCH_CHECK(wpack.numel() == nblocks * kchunks * 2 * packed_tile_bytes(kind), "wpack: size does not match K=", Kp);
  TORCH_CHECK(N <= Np && out.size(0) == M && out.is_contiguous(), "out: bad shape");
  TORCH_CHECK(sw.scalar_type() == at::kFloat && sw.is_contiguous() && sw.numel() == ngroups * Np, "sw: must be float32 [Np/32, K/group, 32]");
  const float* swp = sw.data_ptr<float>();
  const float* zcp = opt_f32(zc, "zc");
  const float* sxgp = opt_f32(sxg, "sxg");
  const float* sxrp = opt_f32(sxr, "sxr");
  const float* bp = opt_f32(bias, "bias");
  const int64_t sxr_step = (sxr.has_value() && sxr->numel() > 1) ? 1 : 0;
  const int64_t out_kind = out_kind_of(out);
  void* outp = out.data_ptr();
  const uint16_t* xp = (const uint16_t*)x.data_ptr();
  const int64_t ldx = x.stride(0);
  const uint8_t* wp = wpack.data_ptr<uint8_t>();
  const int64_t tb = packed_tile_bytes(kind);
  const int64_t gchunks = group / 32;

  // Row sums of x per group, for the zero-point term sum_k x * zc = zc * sum_k x.
  std::vector<float> asum;
  if (zcp) {
    asum.assign(M * ngroups, 0.f);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t g = 0; g < ngroups; ++g) {
        __m512 s = _mm512_setzero_ps();
        for (int64_t k = g * group; k < (g + 1) * group; k += 16) {
          __m256i h = _mm256_loadu_si256((const __m256i*)(xp + m * ldx + k));
          s = _mm512_add_ps(s, (__m512)_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        }
        asum[m * ngroups + g] = _mm512_reduce_add_ps(s);
      }
  }

  __m512i table = _mm512_setzero_si512();
  if (kind == W_INT4) {
    alignas(64) uint16_t t[32];
    for (int i = 0; i < 32; ++i) t[i] = bf16_bits((float)((i & 15) - 8));
    table = _mm512_load_si512((const __m512i*)t);
  }
  const Fp8Tables fp8t;

  at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
    TileState tiles;
    Buf deq(gchunks * 2 * TILE_BYTES);
    Buf accb(M * NB * sizeof(float));
    Buf ctmpb(32 * NB * sizeof(float));
    uint16_t* dq = deq.as<uint16_t>();
    float* acc = accb.as<float>();
    float* ctmp = ctmpb.as<float>();
    for (int64_t nb = b0; nb < b1; ++nb) {
      const uint8_t* wblk = wp + nb * kchunks * 2 * tb;
      const bool vec = sxgp == nullptr && (kind == W_INT4 || kind == W_FP8) && M <= vec_max_m;
      if (vec) {
        const float* as = zcp ? asum.data() : nullptr;
        // the row count as a template argument, for either weight decoder
        auto rows = [&](const auto& r) {
          switch (M) {
            case 1: rows_block<1>(xp, ldx, wblk, ngroups, gchunks, swp, zcp, as, Np, nb, r, acc); break;
            case 2: rows_block<2>(xp, ldx, wblk, ngroups, gchunks, swp, zcp, as, Np, nb, r, acc); break;
            case 3: rows_block<3>(xp, ldx, wblk, ngroups, gchunks, swp, zcp, as, Np, nb, r, acc); break;
            default: rows_block<4>(xp, ldx, wblk, ngroups, gchunks, swp, zcp, as, Np, nb, r, acc); break;
          }
        };
        if (kind == W_INT4) rows(Int4Rows{table});
        else rows(Fp8Rows{&fp8t});
      } else {
        std::memset(acc, 0, M * NB * sizeof(float));
      }
      for (int64_t g = 0; g < (vec ? 0 : ngroups); ++g) {
        // expand this group's 2 x gchunks tiles to bf16 once; every M block reuses them
        const uint8_t* src = wblk + g * gchunks * 2 * tb;
        for (int64_t t = 0; t < 2 * gchunks; ++t) {
          prefetch_lines(src + t * tb + PREFETCH_AHEAD, tb);
          uint16_t* d = dq + t * (TILE_BYTES / 2);
          if (kind == W_INT4) expand_int4_tile(src + t * tb, d, table);
          else if (kind == W_FP8) expand_fp8_tile(src + t * tb, d, fp8t);
          else expand_int8_tile(src + t * tb, d);
        }
        const float* swg = swp + (nb * ngroups + g) * NB;
        const float* zcg = zcp ? zcp + (nb * ngroups + g) * NB : nullptr;
        for (int64_t m0 = 0; m0 < M; m0 += 32) {
          const int r0 = (int)std::min<int64_t>(16, M - m0);
          const int r1 = (int)std::max<int64_t>(0, std::min<int64_t>(16, M - m0 - 16));
          tiles.set(r0, r1);
          zero_c_tiles(r1);
          const uint16_t* xa = xp + m0 * ldx + g * group;
          for (int64_t kc = 0; kc < gchunks; ++kc) {
            _tile_loadd(0, xa + kc * 32, ldx * 2);
            _tile_loadd(2, dq + (2 * kc) * (TILE_BYTES / 2), 64);
            _tile_loadd(3, dq + (2 * kc + 1) * (TILE_BYTES / 2), 64);
            _tile_dpbf16ps(4, 0, 2);
            _tile_dpbf16ps(5, 0, 3);
            if (r1) {
              _tile_loadd(1, xa + 16 * ldx + kc * 32, ldx * 2);
              _tile_dpbf16ps(6, 1, 2);
              _tile_dpbf16ps(7, 1, 3);
            }
          }
          store_c_tiles(ctmp, r1);
          const __m512 s0 = _mm512_loadu_ps(swg), s1 = _mm512_loadu_ps(swg + 16);
          __m512 z0 = _mm512_setzero_ps(), z1 = _mm512_setzero_ps();
          if (zcg) { z0 = _mm512_loadu_ps(zcg); z1 = _mm512_loadu_ps(zcg + 16); }
          for (int i = 0; i < r0 + r1; ++i) {
            const int64_t m = m0 + i;
            __m512 c0 = _mm512_load_ps(ctmp + i * NB), c1 = _mm512_load_ps(ctmp + i * NB + 16);
            if (zcg) {
              const __m512 a = _mm512_set1_ps(-asum[m * ngroups + g]);
              c0 = _mm512_fmadd_ps(z0, a, c0);
              c1 = _mm512_fmadd_ps(z1, a, c1);
            }
            __m512 t0 = s0, t1 = s1;
            if (sxgp) {
              const __m512 sx = _mm512_set1_ps(sxgp[m * ngroups + g]);
              t0 = _mm512_mul_ps(t0, sx);
              t1 = _mm512_mul_ps(t1, sx);
            }
            float* ar = acc + m * NB;
            _mm512_store_ps(ar, _mm512_fmadd_ps(c0, t0, _mm512_load_ps(ar)));
            _mm512_store_ps(ar + 16, _mm512_fmadd_ps(c1, t1, _mm512_load_ps(ar + 16)));
          }
        }
      }
      // epilogue: per-row activation scale, bias, output dtype; the last block may be partial
      const int64_t n0 = nb * NB;
      const int64_t cols = std::min<int64_t>(NB, N - n0);
      __mmask16 k0, k1;
      block_masks(cols, k0, k1);
      __m512 b0v = _mm512_setzero_ps(), b1v = _mm512_setzero_ps();
      if (bp) { b0v = _mm512_maskz_loadu_ps(k0, bp + n0); b1v = _mm512_maskz_loadu_ps(k1, bp + n0 + 16); }
      for (int64_t m = 0; m < M; ++m) {
        __m512 r0v = _mm512_load_ps(acc + m * NB), r1v = _mm512_load_ps(acc + m * NB + 16);
        if (sxrp) {
          const __m512 s = _mm512_set1_ps(sxrp[m * sxr_step]);
          r0v = _mm512_fmadd_ps(r0v, s, b0v);
          r1v = _mm512_fmadd_ps(r1v, s, b1v);
        } else {
          r0v = _mm512_add_ps(r0v, b0v);
          r1v = _mm512_add_ps(r1v, b1v);
        }
        store_row(outp, out_kind, m * N + n0, r0v, k0);
        if (k1) store_row(outp, out_kind, m * N + n0 + 16, r1v, k1);
      }
    }
  });
}

// ==================================================================================================
// INT8 W8A8.
// quantize_i8: x [M, K] (bf16 / fp16 / fp32) -> q int8 in the A-tile layout [ceil(M/16), Kp/64, R, 64],
//   R = min(M, 16) (one AMX A tile = R rows x 64 K values contiguous: a tile load with a 4 KiB row
//   stride would put all 16 rows in one L1 set), zero K tail; scale f32 [M], zp i32 [M].
//   static_scale given: q = clamp(round(x / s) + zp) with the static scale (and zero point)
//   else symmetric: s = max(amax / 127, 1e-10); asymmetric: s = max((hi - lo) / 255, 1e-10),
//   zp = clamp(round(-128 - lo / s)); with lo = min(min x, 0), hi = max(max x, 0).
//   A dynamic row holding NaN / inf gets scale NaN, so its whole output row comes out NaN.
// The arithmetic is the reference's (fp32 division, round half to even).
// ==================================================================================================
namespace {
inline __m512 load16_as_f32(const void* p, at::ScalarType t, int64_t i, __mmask16 mask) {
  if (t == at::kFloat) return _mm512_maskz_loadu_ps(mask, (const float*)p + i);
  __m256i h = _mm256_maskz_loadu_epi16(mask, (const uint16_t*)p + i);
  if (t == at::kBFloat16) return (__m512)_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
  return _mm512_cvtph_ps(h);
}

// byte offset of (row m, K chunk kc) in the A-tile layout with R = min(M, 16) rows per tile (so
// one or two rows are not spread one 64-byte line per KiB)
inline int64_t a_off(int64_t m, int64_t kc, int64_t kchunks, int64_t R) {
  return ((m >> 4) * kchunks + kc) * R * 64 + (m & 15) * 64;
}
}  // namespace

void quantize_i8(const at::Tensor& x, at::Tensor& q, at::Tensor& scale, at::Tensor& zp, bool symmetric,
                 const std::optional<at::Tensor>& static_scale, const std::optional<at::Tensor>& static_zp) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous(), "x: must be contiguous 2-D");
  const int64_t M = x.size(0), K = x.size(1);
  const int64_t R = std::min<int64_t>(M, 16);
  TORCH_CHECK(q.dim() == 4 && q.size(0) == (M + 15) / 16 && q.size(2) == R && q.size(3) == 64 && q.is_contiguous() &&
                  q.scalar_type() == at::kChar, "q: must be int8 [ceil(M/16), Kp/64, min(M, 16), 64]");
  const int64_t kchunks = q.size(1), Kp = kchunks * 64;
  TORCH_CHECK(Kp >= K, "q: Kp=", Kp, " < K=", K);
  const auto dt = x.scalar_type();
  TORCH_CHECK(dt == at::kBFloat16 || dt == at::kHalf || dt == at::kFloat, "x.dtype: must be bf16, fp16 or fp32");
  const void* xp = x.data_ptr();
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = scale.data_ptr<float>();
  int32_t* zpp = zp.data_ptr<int32_t>();
  const bool is_static = static_scale.has_value();
  const float s_static = is_static ? static_scale->item<float>() : 0.f;
  const int32_t zp_static = static_zp.has_value() ? static_zp->item<int32_t>() : 0;
  // one row is a few microseconds of work: below 16 rows a second thread costs more than it saves
  at::parallel_for(0, M, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t m = r0; m < r1; ++m) {
      const char* row = (const char*)xp + m * K * x.element_size();
      float s;
      int32_t z = 0;
      bool bad = false;
      if (is_static) {
        s = s_static;
        z = zp_static;
      } else {
        __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
        __mmask16 nonfinite = 0;
        for (int64_t k = 0; k < K; k += 16) {
          const __mmask16 mk = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
          __m512 v = load16_as_f32(row, dt, k, mk);  // masked-off lanes are 0, which min/max with 0 already
          lo = _mm512_min_ps(lo, v);
          hi = _mm512_max_ps(hi, v);
          nonfinite |= _mm512_fpclass_ps_mask(v, 0x99);  // QNaN | SNaN | +inf | -inf
        }
        bad = nonfinite != 0;
        const float mn = _mm512_reduce_min_ps(lo), mx = _mm512_reduce_max_ps(hi);
        if (symmetric) {
          s = std::max(std::max(-mn, mx) / 127.0f, 1e-10f);
        } else {
          s = std::max((mx - mn) / 255.0f, 1e-10f);
          const float t = mn / s;
          z = (int32_t)std::min(127.f, std::max(-128.f, std::nearbyint(-128.0f - t)));
        }
      }
      sp[m] = bad ? std::nanf("") : s;
      zpp[m] = z;
      const __m512 sv = _mm512_set1_ps(s), zv = _mm512_set1_ps((float)z);
      const __m512 lo8 = _mm512_set1_ps(-128.f), hi8 = _mm512_set1_ps(127.f);
      for (int64_t k = 0; k < Kp; k += 16) {
        const int64_t rem = K - k;
        const __mmask16 mk = rem >= 16 ? (__mmask16)0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1) : (__mmask16)0;
        __m512 v = _mm512_roundscale_ps(_mm512_div_ps(load16_as_f32(row, dt, k, mk), sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, zv), lo8), hi8);
        __m128i b = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v));
        b = _mm_maskz_mov_epi8(mk, b);  // K padding stays 0 (the weights there are 0 too)
        _mm_storeu_si128((__m128i*)(qp + a_off(m, k >> 6, kchunks, R) + (k & 63)), b);
      }
    }
  });
}

namespace {
// The scale / zero-point / bias epilogue of one output row's 32 columns, from exact int32 dot
// products: every path (AMX tiles, VNNI vectors) ends here, so they give identical results.
struct I8Epilogue {
  const float* sxp;
  const int32_t* zpp;
  const float* csp;
  void* outp;
  int64_t out_kind, N;
  __m512 s0, s1, cs0, cs1, bb0, bb1;
  __mmask16 k0, k1;
  inline void row(int64_t m, int64_t n0, __m512i c0i, __m512i c1i) const {
    __m512 c0 = _mm512_cvtepi32_ps(c0i), c1 = _mm512_cvtepi32_ps(c1i);
    if (csp) {
      const __m512 z = _mm512_set1_ps(-(float)zpp[m]);
      c0 = _mm512_fmadd_ps(cs0, z, c0);
      c1 = _mm512_fmadd_ps(cs1, z, c1);
    }
    const __m512 sx = _mm512_set1_ps(sxp[m]);
    store_row(outp, out_kind, m * N + n0, _mm512_fmadd_ps(c0, _mm512_mul_ps(s0, sx), bb0), k0);
    if (k1) store_row(outp, out_kind, m * N + n0 + 16, _mm512_fmadd_ps(c1, _mm512_mul_ps(s1, sx), bb1), k1);
  }
};

// MR rows (MR <= 4) x one block of 32 columns with AVX512-VNNI, for small M: a tile row of the
// packed weight (16 columns x 4 K bytes) is exactly one vpdpbusd operand, so the AMX layout serves
// as is. vpdpbusd multiplies unsigned by signed bytes: the activation byte is used as q + 128
// (xor 0x80) and 128 * colsum(W) (comp) is subtracted at the end; all of it exact in int32.
template <int MR>
inline void i8_rows_vnni(const int8_t* qp, int64_t kchunks, int64_t R, int64_t m0, const int8_t* wblk, const int32_t* comp,
                         int64_t n0, const I8Epilogue& ep) {
  constexpr int CH = MR == 1 ? 4 : 2;  // independent accumulator chains per (row, tile)
  __m512i acc[MR][2][CH];
  for (int m = 0; m < MR; ++m)
    for (int t = 0; t < 2; ++t)
      for (int c = 0; c < CH; ++c) acc[m][t][c] = _mm512_setzero_si512();
  const uint32_t* arow[MR];
  for (int m = 0; m < MR; ++m) arow[m] = (const uint32_t*)(qp + a_off(m0 + m, 0, kchunks, R));
  const __m512i flip = _mm512_set1_epi32((int)0x80808080);
  for (int64_t kc = 0; kc < kchunks; ++kc) {
    const int8_t* wt = wblk + kc * 2 * TILE_BYTES;
    const int64_t ao = kc * R * 16;  // in uint32
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) {
      const __m512i w0 = _mm512_load_si512((const __m512i*)(wt + r * 64));
      const __m512i w1 = _mm512_load_si512((const __m512i*)(wt + TILE_BYTES + r * 64));
      for (int m = 0; m < MR; ++m) {
        const __m512i a = _mm512_xor_si512(_mm512_set1_epi32((int)arow[m][ao + r]), flip);
        acc[m][0][r % CH] = _mm512_dpbusd_epi32(acc[m][0][r % CH], a, w0);
        acc[m][1][r % CH] = _mm512_dpbusd_epi32(acc[m][1][r % CH], a, w1);
      }
    }
  }
  const __m512i cp0 = _mm512_loadu_si512((const __m512i*)comp), cp1 = _mm512_loadu_si512((const __m512i*)(comp + 16));
  for (int m = 0; m < MR; ++m) {
    __m512i c0 = acc[m][0][0], c1 = acc[m][1][0];
    for (int c = 1; c < CH; ++c) {
      c0 = _mm512_add_epi32(c0, acc[m][0][c]);
      c1 = _mm512_add_epi32(c1, acc[m][1][c]);
    }
    ep.row(m0 + m, n0, _mm512_sub_epi32(c0, cp0), _mm512_sub_epi32(c1, cp1));
  }
}
}  // namespace

// gemm_i8: out = (q @ W - zp[m] * colsum[n]) * sx[m] * sw[n] + bias[n]
//   q      : int8 [ceil(M/16), Kp/64, min(M, 16), 64] (quantize_i8's A-tile layout); M = out.size(0)
//   wpack  : int8 [Np/32, Kp/64, 2 tiles, 16 rows, 64 bytes] (VNNI-4: 16 columns x 4 K per row)
//   sw     : f32 [Np] ; comp: i32 [Np] = 128 * colsum(W) (for the VNNI path)
//   colsum : f32 [Np] or None (asymmetric only) ; bias f32 [N] or None
//   vec_max_m: up to this many rows, AVX512-VNNI vectors instead of AMX tiles (same results)
// No software prefetch here: each thread reads its weight blocks as one sequential stream, which the
// hardware prefetcher follows; measured, prefetching 1-16 KiB ahead was as fast or slower.
void gemm_i8(const at::Tensor& q, const at::Tensor& sx, const at::Tensor& zp, const at::Tensor& wpack,
             const at::Tensor& sw, const at::Tensor& comp, const std::optional<at::Tensor>& colsum,
             const std::optional<at::Tensor>& bias, at::Tensor& out, int64_t vec_max_m) {
  const int64_t M = out.size(0), N = out.size(1);
  const int64_t R = std::min<int64_t>(M, 16);
  TORCH_CHECK(q.dim() == 4 && q.size(0) == (M + 15) / 16 && q.size(2) == R && q.size(3) == 64 &&
                  q.scalar_type() == at::kChar && q.is_contiguous(), "q: must be int8 [ceil(M/16), Kp/64, min(M, 16), 64]");
  const int64_t kchunks = q.size(1), Kp = kchunks * 64;
  // |sum (q + 128) * w| <= 255 * 128 * Kp must fit int32
  TORCH_CHECK(Kp <= 65536, "K=", Kp, ": the int8 kernel accumulates in int32 and takes K <= 65536");
  const int64_t nblocks = wpack.size(0), Np = nblocks * NB;
  TORCH_CHECK(wpack.scalar_type() == at::kChar && wpack.is_contiguous() && wpack.numel() == nblocks * kchunks * 2 * TILE_BYTES,
              "wpack: size does not match K=", Kp);
  TORCH_CHECK(N <= Np && out.is_contiguous(), "out: bad shape");
  TORCH_CHECK(sw.numel() == Np && sw.scalar_type() == at::kFloat && sw.is_contiguous(), "sw: must be float32 [Np]");
  TORCH_CHECK(comp.numel() == Np && comp.scalar_type() == at::kInt && comp.is_contiguous(), "comp: must be int32 [Np]");
  const int8_t* qp = q.data_ptr<int8_t>();
  const int8_t* wp = wpack.data_ptr<int8_t>();
  const float* swp = sw.data_ptr<float>();
  const int32_t* compp = comp.data_ptr<int32_t>();
  const float* bp = opt_f32(bias, "bias");
  I8Epilogue ep0;
  ep0.sxp = sx.data_ptr<float>();
  ep0.zpp = zp.data_ptr<int32_t>();
  ep0.csp = opt_f32(colsum, "colsum");
  ep0.outp = out.data_ptr();
  ep0.out_kind = out_kind_of(out);
  ep0.N = N;
  const bool vec = M <= vec_max_m;

  at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
    TileState tiles;
    Buf ctmpb(32 * NB * sizeof(int32_t));
    int32_t* ctmp = ctmpb.as<int32_t>();
    I8Epilogue ep = ep0;
    for (int64_t nb = b0; nb < b1; ++nb) {
      const int8_t* wblk = wp + nb * kchunks * 2 * TILE_BYTES;
      const int64_t n0 = nb * NB;
      const int64_t cols = std::min<int64_t>(NB, N - n0);
      block_masks(cols, ep.k0, ep.k1);
      ep.s0 = _mm512_loadu_ps(swp + n0);
      ep.s1 = _mm512_loadu_ps(swp + n0 + 16);
      ep.cs0 = ep.cs1 = ep.bb0 = ep.bb1 = _mm512_setzero_ps();
      if (ep.csp) { ep.cs0 = _mm512_loadu_ps(ep.csp + n0); ep.cs1 = _mm512_loadu_ps(ep.csp + n0 + 16); }
      if (bp) { ep.bb0 = _mm512_maskz_loadu_ps(ep.k0, bp + n0); ep.bb1 = _mm512_maskz_loadu_ps(ep.k1, bp + n0 + 16); }
      if (vec) {
        for (int64_t m0 = 0; m0 < M; m0 += 4) {
          switch (std::min<int64_t>(4, M - m0)) {
            case 1: i8_rows_vnni<1>(qp, kchunks, R, m0, wblk, compp + n0, n0, ep); break;
            case 2: i8_rows_vnni<2>(qp, kchunks, R, m0, wblk, compp + n0, n0, ep); break;
            case 3: i8_rows_vnni<3>(qp, kchunks, R, m0, wblk, compp + n0, n0, ep); break;
            default: i8_rows_vnni<4>(qp, kchunks, R, m0, wblk, compp + n0, n0, ep); break;
          }
        }
        continue;
      }
      for (int64_t m0 = 0; m0 < M; m0 += 32) {
        const int r0 = (int)std::min<int64_t>(16, M - m0);
        const int r1 = (int)std::max<int64_t>(0, std::min<int64_t>(16, M - m0 - 16));
        tiles.set(r0, r1);
        zero_c_tiles(r1);
        const int8_t* qa0 = qp + a_off(m0, 0, kchunks, R);
        const int8_t* qa1 = qa0 + kchunks * R * 64;  // the next 16 rows (R = 16 whenever they exist)
        if (r1 == 0) {
          // <= 16 rows: even K chunks accumulate in tiles 4, 5 and odd ones in 6, 7, so two
          // independent dot-product chains run (exact int32 sums: the order does not matter)
          _tile_zero(6);
          _tile_zero(7);
          int64_t kc = 0;
          for (; kc + 1 < kchunks; kc += 2) {
            const int8_t* wt = wblk + kc * 2 * TILE_BYTES;
            _tile_loadd(0, qa0 + kc * R * 64, 64);
            _tile_loadd(2, wt, 64);
            _tile_loadd(3, wt + TILE_BYTES, 64);
            _tile_dpbssd(4, 0, 2);
            _tile_dpbssd(5, 0, 3);
            _tile_loadd(1, qa0 + (kc + 1) * R * 64, 64);
            _tile_loadd(2, wt + 2 * TILE_BYTES, 64);
            _tile_loadd(3, wt + 3 * TILE_BYTES, 64);
            _tile_dpbssd(6, 1, 2);
            _tile_dpbssd(7, 1, 3);
          }
          if (kc < kchunks) {
            const int8_t* wt = wblk + kc * 2 * TILE_BYTES;
            _tile_loadd(0, qa0 + kc * R * 64, 64);
            _tile_loadd(2, wt, 64);
            _tile_loadd(3, wt + TILE_BYTES, 64);
            _tile_dpbssd(4, 0, 2);
            _tile_dpbssd(5, 0, 3);
          }
          _tile_stored(4, ctmp, NB * 4);
          _tile_stored(5, ctmp + 16, NB * 4);
          _tile_stored(6, ctmp + 16 * NB, NB * 4);
          _tile_stored(7, ctmp + 16 * NB + 16, NB * 4);
          for (int i = 0; i < r0; ++i)
            ep.row(m0 + i, n0,
                   _mm512_add_epi32(_mm512_load_si512((const __m512i*)(ctmp + i * NB)),
                                    _mm512_load_si512((const __m512i*)(ctmp + 16 * NB + i * NB))),
                   _mm512_add_epi32(_mm512_load_si512((const __m512i*)(ctmp + i * NB + 16)),
                                    _mm512_load_si512((const __m512i*)(ctmp + 16 * NB + i * NB + 16))));
          continue;
        }
        for (int64_t kc = 0; kc < kchunks; ++kc) {
          const int8_t* wt = wblk + kc * 2 * TILE_BYTES;
          _tile_loadd(0, qa0 + kc * R * 64, 64);
          _tile_loadd(2, wt, 64);
          _tile_loadd(3, wt + TILE_BYTES, 64);
          _tile_dpbssd(4, 0, 2);
          _tile_dpbssd(5, 0, 3);
          _tile_loadd(1, qa1 + kc * R * 64, 64);
          _tile_dpbssd(6, 1, 2);
          _tile_dpbssd(7, 1, 3);
        }
        _tile_stored(4, ctmp, NB * 4);
        _tile_stored(5, ctmp + 16, NB * 4);
        _tile_stored(6, ctmp + 16 * NB, NB * 4);
        _tile_stored(7, ctmp + 16 * NB + 16, NB * 4);
        for (int i = 0; i < r0 + r1; ++i)
          ep.row(m0 + i, n0, _mm512_load_si512((const __m512i*)(ctmp + i * NB)),
                 _mm512_load_si512((const __m512i*)(ctmp + i * NB + 16)));
      }
    }
  });
}

// ==================================================================================================
// W4A8: 4-bit weight codes x int8 activations (quantize_i8, dynamic symmetric per row), for W4A16
// checkpoints (GPTQ uint4b8, AWQ uint4 + zero points) when the caller accepts the activation error.
//
// Both paths compute, per K group and exactly in int32, D = sum_k q * (code - z) (z = 8 for GPTQ,
// AWQ's zero point per group and column):
//  - vector path (a few rows): the unsigned codes multiply the signed activation bytes with
//    vpdpbusd, and z * sum(q over the group) comes off after the int32 -> fp32 conversion (the
//    per-row group sums are computed first);
//  - AMX path: each group is unpacked once per 32-column block into signed int8 tiles holding
//    code - z (-15..15), multiplied with _tile_dpbssd.
// Then, in fp32: acc += s_w * D per group; at the end out = acc * s_x + bias. Every integer involved
// stays below 2^24 in magnitude (15 * 128 * group, group <= 8192), so the conversions and the
// zero-point fma are exact: both paths give the same float D, hence the same bits for a row,
// whatever the batch around it and the thread count (tested).
//
// Packed layout (pack.pack_int4_vnni4): uint8 [Np/32, Kp/32, 2 tiles, 4 lines, 64 bytes]. A line
// holds two VNNI-4 rows (16 columns x 4 consecutive K values each): row 2p in the low nibbles,
// row 2p+1 in the high ones, so one 64-byte load, an and, a shift and an and give two vpdpbusd
// operands, or two rows of an int8 B tile.
// ==================================================================================================
namespace {
constexpr int64_t W4A8_CHUNK = 512;  // packed bytes of one 32-K chunk of one N block (2 x 256)

inline void unpack_line(const uint8_t* src, __m512i mask, __m512i& lo, __m512i& hi) {
  const __m512i v = _mm512_loadu_si512((const __m512i*)src);
  lo = _mm512_and_si512(v, mask);
  hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
}

// MR rows (<= 4) x one block of 32 columns with AVX512-VNNI: each unpacked line feeds vpdpbusd
// against the row's broadcast K quad. acc [MR][32] (fp32, zeroed by the caller) gets
// sum over groups of s_w * D, D = C - z * sum q, in the same operation order as the AMX path.
template <int MR>
void w4a8_rows(const int8_t* qp, int64_t kq, int64_t R, int64_t m0, const uint8_t* wblk, int64_t ngroups,
               int64_t gchunks, const float* swb, const float* zcb, const float* sumq, float* acc) {
  constexpr int CH = MR == 1 ? 2 : 1;  // independent chains per (row, tile, nibble half)
  const __m512i mask = _mm512_set1_epi8(0x0F);
  const int8_t* xrow[MR];
  for (int m = 0; m < MR; ++m) xrow[m] = qp + a_off(m0 + m, 0, kq, R);
  for (int64_t g = 0; g < ngroups; ++g) {
    __m512i a[MR][2][2 * CH];
    for (int m = 0; m < MR; ++m)
      for (int t = 0; t < 2; ++t)
        for (int c = 0; c < 2 * CH; ++c) a[m][t][c] = _mm512_setzero_si512();
    for (int64_t kc = 0; kc < gchunks; ++kc) {
      const int64_t kk = g * gchunks + kc, k0 = kk * 32;
      const uint8_t* src = wblk + kk * W4A8_CHUNK;
      const int32_t* xr[MR];
      for (int m = 0; m < MR; ++m) xr[m] = (const int32_t*)(xrow[m] + (k0 >> 6) * R * 64 + (k0 & 63));
#pragma GCC unroll 4
      for (int p = 0; p < 4; ++p) {
        const int c = CH == 2 ? 2 * (p & 1) : 0;
#pragma GCC unroll 2
        for (int t = 0; t < 2; ++t) {
          __m512i lo, hi;
          unpack_line(src + t * 256 + p * 64, mask, lo, hi);
          for (int m = 0; m < MR; ++m) {
            a[m][t][c] = _mm512_dpbusd_epi32(a[m][t][c], lo, _mm512_set1_epi32(xr[m][2 * p]));
            a[m][t][c + 1] = _mm512_dpbusd_epi32(a[m][t][c + 1], hi, _mm512_set1_epi32(xr[m][2 * p + 1]));
          }
        }
      }
    }
    for (int t = 0; t < 2; ++t) {
      const __m512 s = _mm512_loadu_ps(swb + g * NB + 16 * t);
      const __m512 z = zcb ? _mm512_loadu_ps(zcb + g * NB + 16 * t) : _mm512_set1_ps(8.f);
      for (int m = 0; m < MR; ++m) {
        __m512i ci = a[m][t][0];
        for (int c = 1; c < 2 * CH; ++c) ci = _mm512_add_epi32(ci, a[m][t][c]);
        const __m512 cf = _mm512_fmadd_ps(z, _mm512_set1_ps(-sumq[(m0 + m) * ngroups + g]), _mm512_cvtepi32_ps(ci));
        float* ar = acc + m * NB + 16 * t;
        _mm512_store_ps(ar, _mm512_fmadd_ps(cf, s, _mm512_load_ps(ar)));
      }
    }
  }
}
}  // namespace

// gemm_w4a8: out = sum_g s_w[g] * (q @ (codes - z[g]) over group g) * s_x + bias
//   q      : int8 [ceil(M/16), Kq/64, min(M, 16), 64] (quantize_i8's A-tile layout, symmetric)
//   sx     : f32 [M] activation scale per row (NaN for a row holding NaN / inf)
//   wpack  : uint8 [Np/32, Kp/32, 2, 256] (pack.pack_int4_vnni4); Kq = Kp rounded up to 64
//   group  : K rows per scale row (a multiple of 32 dividing Kp, <= 8192)
//   sw     : f32 [Np/32, Kp/group, 32] ; zc: same shape (zero points as floats) or None (all 8)
//   bias   : f32 [N] or None ; out: [M, N] bf16 / fp16 / fp32
//   vec_max_m: up to this many rows the AVX512-VNNI path runs instead of AMX tiles (same bits)
void gemm_w4a8(const at::Tensor& q, const at::Tensor& sx, const at::Tensor& wpack, int64_t group, const at::Tensor& sw,
               const std::optional<at::Tensor>& zc, const std::optional<at::Tensor>& bias, at::Tensor& out,
               int64_t vec_max_m) {
  const int64_t M = out.size(0), N = out.size(1);
  const int64_t R = std::min<int64_t>(M, 16);
  TORCH_CHECK(M >= 1 && out.dim() == 2 && out.is_contiguous(), "out: must be contiguous [M >= 1, N]");
  TORCH_CHECK(q.dim() == 4 && q.size(0) == (M + 15) / 16 && q.size(2) == R && q.size(3) == 64 &&
                  q.scalar_type() == at::kChar && q.is_contiguous(), "q: must be int8 [ceil(M/16), Kq/64, min(M, 16), 64]");
  TORCH_CHECK(sx.scalar_type() == at::kFloat && sx.is_contiguous() && sx.numel() == M, "sx: must be float32 [M]");
  TORCH_CHECK(wpack.dim() == 4 && wpack.scalar_type() == at::kByte && wpack.is_contiguous() && wpack.size(2) == 2 &&
                  wpack.size(3) == 256, "wpack: must be contiguous uint8 [Np/32, Kp/32, 2, 256]");
  const int64_t kq = q.size(1), nblocks = wpack.size(0), kchunks = wpack.size(1), Kp = kchunks * 32, Np = nblocks * NB;
  TORCH_CHECK((Kp + 63) / 64 == kq, "q: Kq/64=", kq, " does not match the weights' K=", Kp);
  TORCH_CHECK(group >= 32 && group % 32 == 0 && Kp % group == 0 && group <= 8192, "group=", group,
              ": must be a multiple of 32 dividing K=", Kp, ", at most 8192");
  TORCH_CHECK(N <= Np, "out: N=", N, " exceeds the packed N=", Np);
  const int64_t ngroups = Kp / group, gchunks = group / 32;
  TORCH_CHECK(sw.scalar_type() == at::kFloat && sw.is_contiguous() && sw.numel() == nblocks * ngroups * NB,
              "sw: must be float32 [Np/32, K/group, 32]");
  const float* zcp = opt_f32(zc, "zc");
  TORCH_CHECK(!zcp || zc->numel() == sw.numel(), "zc: must have sw's shape");
  const float* bp = opt_f32(bias, "bias");
  TORCH_CHECK(!bp || bias->numel() == N, "bias: must have N=", N, " elements");
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sxp = sx.data_ptr<float>();
  const uint8_t* wp = wpack.data_ptr<uint8_t>();
  const float* swp = sw.data_ptr<float>();
  const int64_t out_kind = out_kind_of(out);
  void* outp = out.data_ptr();
  // AMX tile depth in K: 64 bytes, or 32 when the group is an odd multiple of 32
  const int kd = group % 64 == 0 ? 64 : 32;
  const int64_t gk = group / kd;  // tile steps per group
  const bool vec = M <= vec_max_m;

  // sum of the int8 codes per (row, group), as floats (exact): the zero-point term
  std::vector<float> sumq(vec ? M * ngroups : 0);
  if (vec) {
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t g = 0; g < ngroups; ++g) {
        __m256i s = _mm256_setzero_si256();
        for (int64_t k = g * group; k < (g + 1) * group; k += 32)
          s = _mm256_dpbusd_epi32(s, ones, _mm256_loadu_si256((const __m256i*)(qp + a_off(m, k >> 6, kq, R) + (k & 63))));
        sumq[m * ngroups + g] = (float)_mm512_reduce_add_epi32(_mm512_zextsi256_si512(s));
      }
  }
  const float* sq = sumq.data();

  at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
    TileState tiles;
    Buf deq(group * NB);  // one group of one N block as int8 B tiles
    Buf accb(M * NB * sizeof(float));
    Buf ctmpb(32 * NB * sizeof(int32_t));
    int8_t* dq = deq.as<int8_t>();
    float* acc = accb.as<float>();
    int32_t* ctmp = ctmpb.as<int32_t>();
    const __m512i mask = _mm512_set1_epi8(0x0F);
    for (int64_t nb = b0; nb < b1; ++nb) {
      const uint8_t* wblk = wp + nb * kchunks * W4A8_CHUNK;
      const float* swb = swp + nb * ngroups * NB;
      const float* zcb = zcp ? zcp + nb * ngroups * NB : nullptr;
      std::memset(acc, 0, M * NB * sizeof(float));
      if (vec) {
        for (int64_t m0 = 0; m0 < M; m0 += 4) {
          float* am = acc + m0 * NB;
          switch (std::min<int64_t>(4, M - m0)) {
            case 1: w4a8_rows<1>(qp, kq, R, m0, wblk, ngroups, gchunks, swb, zcb, sq, am); break;
            case 2: w4a8_rows<2>(qp, kq, R, m0, wblk, ngroups, gchunks, swb, zcb, sq, am); break;
            case 3: w4a8_rows<3>(qp, kq, R, m0, wblk, ngroups, gchunks, swb, zcb, sq, am); break;
            default: w4a8_rows<4>(qp, kq, R, m0, wblk, ngroups, gchunks, swb, zcb, sq, am); break;
          }
        }
      }
      for (int64_t g = 0; g < (vec ? 0 : ngroups); ++g) {
        // unpack this group to signed int8 B tiles (code - z, in -15..15) once ([step][tile][kd/4
        // rows][64 bytes]); every M block reuses them. The zero point is subtracted here, so the
        // tiles give C - z * sum(q) directly (the same exact integer as the vector path's).
        __m512i zb[2];
        for (int t = 0; t < 2; ++t) {
          // each column's zero in the 4 bytes of its 32-bit lane
          const __m512i z = zcb ? _mm512_cvtps_epi32(_mm512_loadu_ps(zcb + g * NB + 16 * t)) : _mm512_set1_epi32(8);
          zb[t] = _mm512_mullo_epi32(z, _mm512_set1_epi32(0x01010101));
        }
        for (int64_t kc = 0; kc < gchunks; ++kc) {
          const uint8_t* src = wblk + (g * gchunks + kc) * W4A8_CHUNK;
          const int64_t j = kc * 32 / kd, r0 = (kc * 32 % kd) / 4;
          for (int t = 0; t < 2; ++t) {
            int8_t* d = dq + ((j * 2 + t) * (kd / 4) + r0) * 64;
#pragma GCC unroll 4
            for (int p = 0; p < 4; ++p) {
              __m512i lo, hi;
              unpack_line(src + t * 256 + p * 64, mask, lo, hi);
              _mm512_store_si512((__m512i*)(d + (2 * p) * 64), _mm512_sub_epi8(lo, zb[t]));
              _mm512_store_si512((__m512i*)(d + (2 * p + 1) * 64), _mm512_sub_epi8(hi, zb[t]));
            }
          }
        }
        const __m512 s0 = _mm512_loadu_ps(swb + g * NB), s1 = _mm512_loadu_ps(swb + g * NB + 16);
        const int64_t bstep = (kd / 4) * 64;  // bytes of one B tile in dq
        for (int64_t m0 = 0; m0 < M; m0 += 32) {
          const int r0 = (int)std::min<int64_t>(16, M - m0);
          const int r1 = (int)std::max<int64_t>(0, std::min<int64_t>(16, M - m0 - 16));
          tiles.set(r0, r1, kd);
          zero_c_tiles(r1);
          const int8_t* qa0 = qp + a_off(m0, 0, kq, R);
          const int8_t* qa1 = qa0 + kq * R * 64;  // the next 16 rows (R = 16 whenever they exist)
          for (int64_t j = 0; j < gk; ++j) {
            const int64_t k = g * group + j * kd;
            const int64_t ao = (k >> 6) * R * 64 + (k & 63);
            const int8_t* b = dq + j * 2 * bstep;
            _tile_loadd(0, qa0 + ao, 64);
            _tile_loadd(2, b, 64);
            _tile_loadd(3, b + bstep, 64);
            _tile_dpbssd(4, 0, 2);
            _tile_dpbssd(5, 0, 3);
            if (r1) {
              _tile_loadd(1, qa1 + ao, 64);
              _tile_dpbssd(6, 1, 2);
              _tile_dpbssd(7, 1, 3);
            }
          }
          // a group is at most 4 tile steps deep: no point in splitting them over more accumulators
          store_c_tiles(ctmp, r1);
          for (int i = 0; i < r0 + r1; ++i) {
            const int64_t m = m0 + i;
            const __m512i c0 = _mm512_load_si512((const __m512i*)(ctmp + i * NB));
            const __m512i c1 = _mm512_load_si512((const __m512i*)(ctmp + i * NB + 16));
            float* ar = acc + m * NB;
            _mm512_store_ps(ar, _mm512_fmadd_ps(_mm512_cvtepi32_ps(c0), s0, _mm512_load_ps(ar)));
            _mm512_store_ps(ar + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(c1), s1, _mm512_load_ps(ar + 16)));
          }
        }
      }
      // epilogue: per-row activation scale, bias, output dtype; the last block may be partial
      const int64_t n0 = nb * NB;
      const int64_t cols = std::min<int64_t>(NB, N - n0);
      __mmask16 k0, k1;
      block_masks(cols, k0, k1);
      __m512 b0v = _mm512_setzero_ps(), b1v = _mm512_setzero_ps();
      if (bp) { b0v = _mm512_maskz_loadu_ps(k0, bp + n0); b1v = _mm512_maskz_loadu_ps(k1, bp + n0 + 16); }
      for (int64_t m = 0; m < M; ++m) {
        const __m512 s = _mm512_set1_ps(sxp[m]);
        store_row(outp, out_kind, m * N + n0, _mm512_fmadd_ps(_mm512_load_ps(acc + m * NB), s, b0v), k0);
        if (k1) store_row(outp, out_kind, m * N + n0 + 16, _mm512_fmadd_ps(_mm512_load_ps(acc + m * NB + 16), s, b1v), k1);
      }
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("amx_init", &amx_init, "ask Linux for the AMX tile state (once per process)");
  m.def("gemm_dq", &gemm_dq, "bf16 x (int4 | int8 | fp8 codes) GEMM on AMX with per-group scales");
  m.def("quantize_i8", &quantize_i8, "per-row / static int8 activation quantization");
  m.def("gemm_i8", &gemm_i8, "int8 x int8 GEMM on AMX with the scale / zero-point epilogue");
  m.def("gemm_w4a8", &gemm_w4a8, "int8 activations x 4-bit weight codes (VNNI / AMX int8) with per-group scales");
}

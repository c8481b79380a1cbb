// The memory floor of decode-size layers on this card, measured the way the decode kernels are timed (20
// calls back to back in one CUDA graph over rotated buffers, no L2 reuse; median of 15 replays):
//   1. stream_kernel: a plain read-only stream over B bytes (no math), each block a contiguous share, the
//      first loads issued before griddepcontrol.wait as the decode kernels do, with and without PDL; over
//      grids of 1 / 2 / 4 blocks an SM and the decode kernels' M = 1 grids, `cap` 2 limiting residency to
//      two blocks an SM (as the decode kernels' registers do), and `slices` > 1 ending each block with
//      the decode kernels' workspace split-K tail (plane store, fence, counter atomic, last block adds);
//   2. pattern_kernel: the decode kernels' own load pattern (a 64-column tile of 4 reorder atoms, K
//      slices of 128-k chunks taken round-robin by the warps, a lane's 4-byte word of each atom) on the
//      Llama-3-8B int4 g128 shapes and grids, with and without the tail, capped or not.
// Set beside the decode kernels' per-layer times (tools.cutlass_w4a16_decode_sweep), the rows separate
// what a layer costs above its bytes into grid shape, access pattern, split-K tail and the kernel's own
// work (docs/gpu-results.md, sixteenth lease). No torch: nvcc alone builds it.
//
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a tools/cutlass_tiles/stream_floor.cu -o stream_floor
//   ./stream_floor            # two tables, us per call and TB/s
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <cuda_runtime.h>

#define CHECK(x)                                                                   \
  do {                                                                             \
    cudaError_t e_ = (x);                                                          \
    if (e_ != cudaSuccess) {                                                       \
      std::printf("%s failed: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); \
      std::exit(1);                                                                \
    }                                                                              \
  } while (0)

constexpr int kThreads = 256;
constexpr int kUnroll = 8;
constexpr int kCapSmem = 100 * 1024;  // two blocks an SM (228 KB)  // 16-byte loads in flight a thread: 4 KB a warp, the decode kernels' chunk

__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.b32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

__device__ __forceinline__ uint32_t ld_word(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.global.nc.L1::no_allocate.b32 %0, [%1];\n" : "=r"(v) : "l"(p));
  return v;
}

// The decode kernels' workspace split-K tail for a block of tile `tile` (of `tiles`), K slice `slice` (of
// `slices`): threads 0-63 store `v` to the slice's plane, a fence, the tile's counter bumped; the tile's
// last block adds the planes in slice order and stores, and zeroes the counter.
__device__ void workspace_tail(float v, int tile, int tiles, int slice, int slices, uint32_t* out, float* ws, int* counters) {
  __shared__ int is_last;
  if (threadIdx.x < 64) __stcg(&ws[(size_t)slice * tiles * 64 + tile * 64 + threadIdx.x], v);
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) is_last = atomicAdd(&counters[tile], 1) == slices - 1;
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  if (threadIdx.x < 64) {
    float r = 0.f;
    for (int sl = 0; sl < slices; ++sl) r += __ldcg(&ws[(size_t)sl * tiles * 64 + tile * 64 + threadIdx.x]);
    out[tile * 64 + threadIdx.x] = __float_as_uint(r);
  }
  if (threadIdx.x == 0) counters[tile] = 0;
}

// Each block reads a contiguous share of the buffer (as a decode block reads its tile's K slice), in rounds
// of kUnroll loads a thread; one word a block is written after griddepcontrol.wait.
// `slices` > 1: the blocks are `slices` K slices of gridDim.x / slices column tiles, and each block ends as a
// decode block whose tile is split over K: its 64 sums to a workspace plane, a fence, the tile's counter
// bumped, and the tile's last block adds the planes and stores (the decode kernels' workspace path).
__global__ void __launch_bounds__(kThreads) stream_kernel(const uint4* __restrict__ src, size_t n_vec, uint32_t* out,
                                                         int slices, float* ws, int* counters) {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  const size_t per_block = (n_vec + gridDim.x - 1) / gridDim.x;
  const size_t lo = blockIdx.x * per_block, hi = min(lo + per_block, n_vec);
  uint32_t acc = 0;
  size_t i = lo + threadIdx.x;
  uint4 v[kUnroll];
  bool waited = false;
  for (; i + (kUnroll - 1) * kThreads < hi; i += kUnroll * kThreads) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = ld_stream(src + i + u * kThreads);
    if (!waited) {  // the first loads are in flight before waiting on the previous kernel, as in the decode kernels
#if __CUDA_ARCH__ >= 900
      asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
      waited = true;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < hi; i += kThreads) {
    const uint4 w = ld_stream(src + i);
    acc ^= w.x ^ w.y ^ w.z ^ w.w;
  }
  if (!waited) {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
  }
  for (int o = 16; o; o /= 2) acc ^= __shfl_xor_sync(0xffffffffu, acc, o);
  __shared__ uint32_t part[kThreads / 32];
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = acc;
  __syncthreads();
  if (slices <= 1) {
    if (threadIdx.x == 0) {
      uint32_t r = 0;
      for (int w = 0; w < kThreads / 32; ++w) r ^= part[w];
      out[blockIdx.x] = r;
    }
    return;
  }
  const int tiles = gridDim.x / slices;
  workspace_tail(float(part[threadIdx.x % 8] & 0xff), blockIdx.x % tiles, tiles, blockIdx.x / tiles, slices, out, ws, counters);
}

// The decode kernels' own load pattern with nothing else: a block owns a 64-column tile (4 reorder atoms
// of 128 bytes a k block) and a K slice of 128-k chunks, its warps take the slice's chunks round-robin, a
// lane loads its word of each atom (4 bytes, ld.global.nc.L1::no_allocate), a chunk's 32 words in flight
// while the previous chunk's are consumed (here: XORed), the first chunk before griddepcontrol.wait;
// then the same end as stream_kernel (`tail` 1: the workspace split-K tail over gridDim.y slices).
template <int WARPS>
__global__ void __launch_bounds__(WARPS * 32) pattern_kernel(const uint32_t* __restrict__ w, int n, int k, int slice_chunks,
                                                           int tail, uint32_t* out, float* ws, int* counters) {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int chunks = k / 128, c_lo = blockIdx.y * slice_chunks;
  const int n_chunks = min(c_lo + slice_chunks, chunks) - c_lo;
  const size_t kb_words = (size_t)2 * n;  // one k block of every atom
  const uint32_t* wt = w + (size_t)blockIdx.x * 4 * 32 + lane;
  uint32_t v[8][4], acc = 0;
  int c = warp;
  const uint32_t* wc = wt + (size_t)(c_lo + c) * 8 * kb_words;
  if (c < n_chunks)
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) v[i][j] = ld_word(wc + i * kb_words + 32 * j);
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
  for (; c < n_chunks; c += WARPS) {
    const bool has_next = c + WARPS < n_chunks;
    wc += (size_t)WARPS * 8 * kb_words;
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        acc ^= v[i][j];
        if (has_next) v[i][j] = ld_word(wc + i * kb_words + 32 * j);
      }
  }
  for (int o = 16; o; o /= 2) acc ^= __shfl_xor_sync(0xffffffffu, acc, o);
  __shared__ uint32_t part[WARPS];
  if (lane == 0) part[warp] = acc;
  __syncthreads();
  const int tiles = gridDim.x, tile = blockIdx.x, slice = blockIdx.y, slices = gridDim.y;
  if (!tail || slices == 1) {
    if (threadIdx.x < 64) out[((size_t)slice * tiles + tile) * 64 + threadIdx.x] = part[threadIdx.x % WARPS];
    return;
  }
  workspace_tail(float(part[threadIdx.x % WARPS] & 0xff), tile, tiles, slice, slices, out, ws, counters);
}

static void launch(const uint4* src, size_t n_vec, uint32_t* out, int blocks, int cap, int slices, float* ws, int* counters,
                   bool pdl, cudaStream_t s) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(kThreads);
  cfg.stream = s;
  cfg.dynamicSmemBytes = cap == 2 ? kCapSmem : 0;
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = pdl ? 1 : 0;
  CHECK(cudaLaunchKernelEx(&cfg, stream_kernel, src, n_vec, out, slices, ws, counters));
}

// Microseconds per call: `calls` launches (launch_call(c), c = 0 .. calls - 1) captured in one CUDA graph,
// the median of 15 replays after 3 warm-up replays.
template <class F>
static float graph_us_per_call(cudaStream_t s, int calls, F launch_call) {
  static cudaEvent_t e0 = nullptr, e1 = nullptr;
  if (e0 == nullptr) {
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
  }
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int c = 0; c < calls; ++c) launch_call(c);
  CHECK(cudaStreamEndCapture(s, &g));
  CHECK(cudaGraphInstantiate(&ge, g, 0));
  for (int w = 0; w < 3; ++w) CHECK(cudaGraphLaunch(ge, s));
  std::vector<float> t;
  for (int r = 0; r < 15; ++r) {
    CHECK(cudaEventRecord(e0, s));
    CHECK(cudaGraphLaunch(ge, s));
    CHECK(cudaEventRecord(e1, s));
    CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms * 1000.f / calls);
  }
  std::sort(t.begin(), t.end());
  CHECK(cudaGraphExecDestroy(ge));
  CHECK(cudaGraphDestroy(g));
  return t[t.size() / 2];
}

int main() {
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const size_t pool_bytes = size_t(1) << 30;  // 1 GiB of rotated buffers: far past the 50 MB L2
  char* pool = nullptr;
  CHECK(cudaMalloc(&pool, pool_bytes));
  CHECK(cudaMemset(pool, 1, pool_bytes));
  uint32_t* out = nullptr;
  CHECK(cudaMalloc(&out, 1 << 20));
  float* ws = nullptr;
  int* counters = nullptr;
  CHECK(cudaMalloc(&ws, 1 << 20));
  CHECK(cudaMalloc(&counters, 1 << 16));
  CHECK(cudaMemset(counters, 0, 1 << 16));
  CHECK(cudaFuncSetAttribute(stream_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kCapSmem));
  cudaStream_t s;
  CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  std::printf("# %s, %d SMs; graph of 20 calls over rotated buffers, median of 15 replays\n", prop.name, sms);
  std::printf("%8s %7s %4s %6s %4s %9s %7s\n", "MB", "blocks", "cap", "slices", "pdl", "us/call", "TB/s");
  const double mbs[] = {4.2, 8.65, 13.0, 29.4, 60.6};
  const int calls = 20;
  for (double mb : mbs) {
    const size_t bytes = size_t(mb * 1e6) / 4096 * 4096;
    const int copies = std::max<int>(2, int(std::min<size_t>(pool_bytes / bytes, 64)));
    // whole waves (1, 2, 4 blocks an SM) and the decode kernels' M = 1 grids: qkv 96 tiles x 2 slices (192),
    // o / down 64 x 4 (256), gate_up 448 tiles; `cap` 2: at most two blocks an SM (shared memory), as the
    // decode kernels' registers allow, so 448 blocks run as 1.7 waves
    // `slices`: the grid ends as K slices of a decode layer (qkv 2, o / down 4 at M = 1), through the workspace
    const int grids[][3] = {{sms, 0, 1},     {192, 0, 1}, {192, 2, 1}, {192, 2, 2}, {256, 0, 1}, {256, 2, 1},
                            {256, 0, 4},     {256, 2, 4}, {2 * sms, 0, 1}, {448, 0, 1}, {448, 2, 1}, {4 * sms, 0, 1},
                            {4 * sms, 2, 1}};
    for (const auto& grid : grids) {
      const int blocks = grid[0], cap = grid[1], slices = grid[2];
      for (int pdl = 0; pdl < 2; ++pdl) {
        const float us = graph_us_per_call(s, calls, [&](int c) {
          launch(reinterpret_cast<const uint4*>(pool + size_t(c % copies) * bytes), bytes / 16, out, blocks, cap, slices, ws, counters, pdl, s);
        });
        std::printf("%8.2f %7d %4d %6d %4d %9.2f %7.2f\n", bytes / 1e6, blocks, cap, slices, pdl, us, bytes / (us * 1e-6) / 1e12);
      }
    }
  }
  // The decode kernels' M = 1 grids on the Llama-3-8B shapes (int4 g128 weights: N x K / 2 bytes), their
  // load pattern only (pattern_kernel), blocks an SM capped as their registers cap them (two 8-warp or
  // four 4-warp blocks), with and without the workspace split-K tail; set beside the decode kernels'
  // own times (tools.cutlass_w4a16_decode_sweep) this separates the access pattern from the math.
  std::printf("\n# decode load pattern only, PDL, graph of 20 calls over rotated buffers\n");
  std::printf("%8s %6s %6s %6s %6s %5s %9s %7s\n", "shape", "tiles", "slices", "warps", "tail", "cap", "us/call", "TB/s");
  struct Shape { const char* name; int n, k, slices, warps; };
  const Shape shapes[] = {{"qkv", 6144, 4096, 2, 8}, {"o", 4096, 4096, 4, 8}, {"gate_up", 28672, 4096, 1, 4}, {"down", 4096, 14336, 4, 8}};
  CHECK(cudaFuncSetAttribute(pattern_kernel<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, kCapSmem));
  CHECK(cudaFuncSetAttribute(pattern_kernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, kCapSmem));
  for (const Shape& sh : shapes) {
    const size_t bytes = size_t(sh.n) * sh.k / 2;
    const int copies = std::max<int>(2, int(std::min<size_t>(pool_bytes / bytes, 64)));
    const int tiles = sh.n / 64, chunks = sh.k / 128;
    const int slice_chunks = (chunks + sh.slices - 1) / sh.slices;
    for (int tail = 0; tail < 2; ++tail) {
      for (int cap = 0; cap < 2; ++cap) {
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(tiles, sh.slices);
        cfg.blockDim = dim3(sh.warps * 32);
        cfg.stream = s;
        cfg.dynamicSmemBytes = cap ? (sh.warps == 8 ? kCapSmem : kCapSmem / 2) : 0;  // 2 or 4 blocks an SM
        cudaLaunchAttribute attr;
        attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr.val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = &attr;
        cfg.numAttrs = 1;
        const float us = graph_us_per_call(s, calls, [&](int c) {
          const uint32_t* src = reinterpret_cast<const uint32_t*>(pool + size_t(c % copies) * bytes);
          if (sh.warps == 8)
            CHECK(cudaLaunchKernelEx(&cfg, pattern_kernel<8>, src, sh.n, sh.k, slice_chunks, tail, out, ws, counters));
          else
            CHECK(cudaLaunchKernelEx(&cfg, pattern_kernel<4>, src, sh.n, sh.k, slice_chunks, tail, out, ws, counters));
        });
        std::printf("%8s %6d %6d %6d %6d %5d %9.2f %7.2f\n", sh.name, tiles, sh.slices, sh.warps, tail, cap, us, bytes / (us * 1e-6) / 1e12);
      }
    }
  }
  return 0;
}

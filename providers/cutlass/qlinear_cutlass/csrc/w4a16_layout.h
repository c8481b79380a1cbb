// The weight orders of the W4A16 / W8A16 (w4a16.cuh) and W4A8 (w4a8.cuh) GEMMs, in a header of their own
// (CuTe only) so a host-side probe can print them: tests/providers/cutlass compares them with
// qlinear_cutlass/w4a16_layout.py / w4a8_layout.py and with CUTLASS's compute_memory_reordering_atom.
#pragma once

#include "cute/layout.hpp"
#include "cutlass/detail/layout.hpp"
#include "cutlass/layout/matrix.h"

namespace qlinear_cutlass {

using namespace cute;

// (n, k) within a 16 x 16 atom -> int4 element offset: n = a + 8 b -> 32 a + b; k = c + 2 d + 8 e -> 4 c + 8 d + 2 e.
using W4ReorderAtom = Layout<Shape<Shape<Shape<_8, _2>, _1>, Shape<Shape<_2, _4, _2>, _1>>,
                             Stride<Stride<Stride<_32, _1>, _0>, Stride<Stride<_4, _8, _2>, _0>>>;
using W4Stride = cutlass::detail::TagToStrideA_t<cutlass::layout::RowMajor>;  // [N, K], K contiguous
// The atom tiled over (N, K, L), atoms N-fastest: offset = atom + 256 (n / 16) + 16 N (k / 16).
using W4Layout = decltype(tile_to_shape(W4ReorderAtom{}, Layout<Shape<int, int, int>, W4Stride>{}));

inline W4Layout w4_layout(int n, int k) { return tile_to_shape(W4ReorderAtom{}, make_shape(n, k, 1)); }

// 8-bit codes for a 16-bit wgmma (W8A16): the same 16 x 16 atom with CUTLASS's [3120] pair order (its
// LayoutAwareConvert int8 fast path): n = a + 8 b -> 32 a + b; k = c + 2 d + 8 e -> 2 c + 8 d + 4 e.
using W8ReorderAtom = Layout<Shape<Shape<Shape<_8, _2>, _1>, Shape<Shape<_2, _4, _2>, _1>>,
                             Stride<Stride<Stride<_32, _1>, _0>, Stride<Stride<_2, _8, _4>, _0>>>;
using W8Layout = decltype(tile_to_shape(W8ReorderAtom{}, Layout<Shape<int, int, int>, W4Stride>{}));

inline W8Layout w8_layout(int n, int k) { return tile_to_shape(W8ReorderAtom{}, make_shape(n, k, 1)); }

// W4A8: the 16 x 32 atom of an 8-bit wgmma A fragment (no value shuffle; the lookup converter takes
// the nibbles in order): n = a + 8 b -> 64 a + 4 b; k = c + 4 d + 16 e -> c + 16 d + 8 e.
using W4A8ReorderAtom = Layout<Shape<Shape<Shape<_8, _2>, _1>, Shape<Shape<_4, _4, _2>, _1>>,
                               Stride<Stride<Stride<_64, _4>, _0>, Stride<Stride<_1, _16, _8>, _0>>>;
// Atoms N-fastest: offset = atom + 512 (n / 16) + 32 N (k / 32).
using W4A8Layout = decltype(tile_to_shape(W4A8ReorderAtom{}, Layout<Shape<int, int, int>, W4Stride>{}));

inline W4A8Layout w4a8_layout(int n, int k) { return tile_to_shape(W4A8ReorderAtom{}, make_shape(n, k, 1)); }

}  // namespace qlinear_cutlass

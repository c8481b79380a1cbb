// The int4 weight order of the W4A16 GEMM (w4a16.cuh), in a header of its own (CuTe only) so a
// host-side probe can print it: tests/providers/cutlass compares it with qlinear_cutlass/w4a16_layout.py
// and with CUTLASS's compute_memory_reordering_atom.
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

}  // namespace qlinear_cutlass

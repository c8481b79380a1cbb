// fp4_mm for fp16 activations: the dispatcher of the fp4-fp16 extension (mixed_input_dispatch.h).
#define QLC_MIXED_BITS 0
#define QLC_FLOAT_BITS 4
#define QLC_FLOAT_MX 0
#define QLC_MIXED_ACT cutlass::half_t
#define QLC_MIXED_ACT_ID kActF16
#include "mixed_input_dispatch.h"

// fp4_mm for bf16 activations: the dispatcher of the fp4-bf16 extension (mixed_input_dispatch.h).
#define QLC_MIXED_BITS 0
#define QLC_FLOAT_BITS 4
#define QLC_FLOAT_MX 1
#define QLC_MIXED_ACT cutlass::bfloat16_t
#define QLC_MIXED_ACT_ID kActBF16
#include "mixed_input_dispatch.h"

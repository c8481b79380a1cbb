// w4a16_mm: the W4A16 extension's dispatcher (int4 codes; mixed_input_dispatch.h).
#define QLC_MIXED_BITS 4
#include "mixed_input_dispatch.h"

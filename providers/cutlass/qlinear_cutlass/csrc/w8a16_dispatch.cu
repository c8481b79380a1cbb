// w8a16_mm: the W8A16 extension's dispatcher (int8 codes; mixed_input_dispatch.h).
#define QLC_MIXED_BITS 8
#include "mixed_input_dispatch.h"

// Opens the NEON code region. Advanced SIMD is part of the AArch64 baseline, so no target
// pragma is needed; the region exists so every ISA's code has the same shape.
#include "../../guard.hpp"
#if defined(MBOK_NEON_REGION_OPEN)
#error "mbok: neon region opened twice"
#endif
#define MBOK_NEON_REGION_OPEN 1

// Closes the avx2 code region opened by begin.hpp.
#include "../../guard.hpp"
#if !defined(MBOK_AVX2_REGION_OPEN)
#error "mbok: avx2 region closed without being opened"
#endif
#undef MBOK_AVX2_REGION_OPEN
#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

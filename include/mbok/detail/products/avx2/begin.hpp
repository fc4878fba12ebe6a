// Opens the avx2 code region: everything up to end.hpp compiles for this ISA, whatever flags
// the user's compiler was given. Standard headers and <immintrin.h> are included before it.
// No include guard: a region may be opened more than once.
#include "../../guard.hpp"
#if defined(MBOK_AVX2_REGION_OPEN)
#error "mbok: avx2 region opened twice"
#endif
#define MBOK_AVX2_REGION_OPEN 1
// Every extension in the target list must be one the avx2 tier requires of the CPU
// (detail::kAvx2Features in isa.hpp); a test reads this list and checks it against isa.hpp.
// The target lists stay on one line each.
// clang-format off
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi,bmi2,popcnt,lzcnt"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2,popcnt,lzcnt")
#endif
// clang-format on

// Opens the avx512 code region: everything up to end.hpp compiles for this ISA, whatever flags
// the user's compiler was given. Standard headers and <immintrin.h> are included before it.
// No include guard: a region may be opened more than once.
#include "../../guard.hpp"
#if defined(MBOK_AVX512_REGION_OPEN)
#error "mbok: avx512 region opened twice"
#endif
#define MBOK_AVX512_REGION_OPEN 1
// Every extension in the target list must be one the avx512 tier requires of the CPU
// (detail::kAvx512Features and kAvx2Features in isa.hpp), or be used only on paths guarded by
// its flag (kAvx512Guarded): avx512vnni is there for the int8 product's VNNI variant, which runs
// only when cpu_features().avx512vnni (compilers emit VNNI only from int8 dot products, which
// the region computes nowhere else). A test reads this list and checks it against isa.hpp.
// The target lists stay on one line each.
// clang-format off
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi,bmi2,popcnt,lzcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,avx512vnni"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2,popcnt,lzcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,avx512vnni")
// GCC's AVX-512 intrinsics start from a deliberately undefined vector (`__m512i __Y = __Y`),
// which GCC 12 reports as uninitialized once they are inlined here (at -O1 and with
// sanitizers): silence that false positive for this region only, so users' -Werror builds pass.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// clang-format on

// Opens the functions compiled for VBMI: MBOK_AVX512_VBMI_TARGET marks each of them, up to
// vbmi_end.hpp. VBMI is not part of the avx512 tier, so these functions are not inside the
// tier's region (begin.hpp) but carry their own target, and run only when the CPU reports it
// (cpu_features().avx512vbmi). No include guard: lut_i8.hpp and lut_i8_prefill.hpp each open
// and close it.
#include "../../guard.hpp"
#if defined(MBOK_AVX512_VBMI_TARGET)
#error "mbok: VBMI functions opened twice"
#endif

// GCC 12 reports the self-initialised `undefined` vectors inside the intrinsics headers as
// maybe-uninitialized once they are inlined here (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// clang-format off
#define MBOK_AVX512_VBMI_TARGET __attribute__((target("avx2,fma,bmi,bmi2,popcnt,lzcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi")))
// clang-format on

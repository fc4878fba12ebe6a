#pragma once
#include "../guard.hpp"
#include "features.hpp"

#include <cpuid.h>
#include <cstdint>

namespace mbok::detail::cpu {

inline std::uint64_t xgetbv0() noexcept {
  std::uint32_t eax = 0, edx = 0;
  // Raw encoding of XGETBV: needs no -mxsave at the user's side.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<std::uint64_t>(edx) << 32) | eax;
}

/// CPUID + XGETBV: a feature counts only when the OS also saves its register state.
inline CpuFeatures read_x86_features() noexcept {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return f;
  const unsigned max_leaf = eax;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  f.popcnt = (ecx >> 23) & 1u;
  const bool osxsave = (ecx >> 27) & 1u;
  const bool fma = (ecx >> 12) & 1u;
  if (!osxsave || max_leaf < 7) return f;
  const std::uint64_t xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6u) == 0x6u;     // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xE6u) == 0xE6u;   // + opmask, ZMM_Hi256, Hi16_ZMM
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = (ebx >> 5) & 1u;
  const bool bmi2 = (ebx >> 8) & 1u;
  f.avx2 = ymm_state && avx2 && fma && bmi2;
  if (zmm_state) {
    f.avx512f = (ebx >> 16) & 1u;
    f.avx512bw = (ebx >> 30) & 1u;
    f.avx512vl = (ebx >> 31) & 1u;
    f.avx512vnni = (ecx >> 11) & 1u;
    f.avx512bitalg = (ecx >> 12) & 1u;
    f.avx512vpopcntdq = (ecx >> 14) & 1u;
  }
  return f;
}

}  // namespace mbok::detail::cpu

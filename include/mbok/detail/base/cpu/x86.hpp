#pragma once
#include "../../guard.hpp"
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

inline constexpr bool bit(unsigned reg, unsigned n) noexcept { return ((reg >> n) & 1u) != 0; }

/// CPUID + XGETBV: a vector extension counts only when the OS also saves its register state.
/// Every flag is read on its own; which tiers they enable is decided in isa.hpp.
inline CpuFeatures read_x86_features() noexcept {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return f;
  const unsigned max_leaf = eax;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  f.sse3 = bit(ecx, 0);
  f.ssse3 = bit(ecx, 9);
  f.sse41 = bit(ecx, 19);
  f.sse42 = bit(ecx, 20);
  f.popcnt = bit(ecx, 23);
  const bool fma = bit(ecx, 12);
  const bool osxsave = bit(ecx, 27);
  const bool avx = bit(ecx, 28);
  const bool f16c = bit(ecx, 29);
  // __get_cpuid checks the highest extended leaf itself.
  if (__get_cpuid(0x80000001u, &eax, &ebx, &ecx, &edx)) f.lzcnt = bit(ecx, 5);
  const std::uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm_state = (xcr0 & 0x6u) == 0x6u;    // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xE6u) == 0xE6u;  // + opmask, ZMM_Hi256, Hi16_ZMM
  f.avx = ymm_state && avx;
  f.fma = ymm_state && fma;
  f.f16c = ymm_state && f16c;
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  f.bmi1 = bit(ebx, 3);
  f.bmi2 = bit(ebx, 8);
  f.avx2 = ymm_state && bit(ebx, 5);
  if (zmm_state) {
    f.avx512f = bit(ebx, 16);
    f.avx512dq = bit(ebx, 17);
    f.avx512bw = bit(ebx, 30);
    f.avx512vl = bit(ebx, 31);
    f.avx512vbmi = bit(ecx, 1);
    f.avx512vnni = bit(ecx, 11);
    f.avx512bitalg = bit(ecx, 12);
    f.avx512vpopcntdq = bit(ecx, 14);
  }
  return f;
}

}  // namespace mbok::detail::cpu

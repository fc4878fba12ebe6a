#pragma once
#include "../../guard.hpp"

namespace mbok {

/// What the CPU and the operating system support, as read once per program: one flag per
/// instruction-set extension. A flag is true only when the CPU reports the extension and,
/// for vector extensions, the OS saves the registers it uses (XGETBV on x86).
///
/// Which flags each ISA tier needs is decided in one place, from a `CpuFeatures` value alone
/// (`cpu_supports(Isa, const CpuFeatures&)` in isa.hpp), so synthetic feature sets can be
/// tested. Adding an extension: a field here, its name in `detail::cpu::kFeatureNames`, its
/// CPUID bit in x86.hpp (or hwcap bit in arm.hpp) and, when a code region is compiled for it,
/// an entry in that tier's list in isa.hpp.
struct CpuFeatures {
  // x86-64: baseline extensions the avx2 and avx512 regions are compiled for.
  bool sse3 = false;
  bool ssse3 = false;
  bool sse41 = false;
  bool sse42 = false;
  bool popcnt = false;
  bool lzcnt = false;  ///< LZCNT (CPUID 0x80000001 ECX bit 5, "abm" in /proc/cpuinfo)
  bool bmi1 = false;
  bool bmi2 = false;
  // x86-64: 256-bit vectors (each with OS support for ymm state).
  bool avx = false;
  bool avx2 = false;  ///< the AVX2 extension alone (FMA, BMI1/2 are flags of their own)
  bool fma = false;
  bool f16c = false;
  // x86-64: AVX-512 (each with OS support for zmm and opmask state).
  bool avx512f = false;
  bool avx512dq = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vpopcntdq = false;
  bool avx512vnni = false;  ///< VPDPBUSD on zmm
  bool avx512bitalg = false;
  bool avx512vbmi = false;  ///< VPERMB (byte permute across the zmm)
  // AArch64.
  bool neon = false;     ///< AArch64 Advanced SIMD
  bool dotprod = false;  ///< AArch64 SDOT/UDOT
};

namespace detail::cpu {

/// A feature flag and its name as Intel's and Arm's manuals spell it.
struct FeatureName {
  bool CpuFeatures::*flag;
  const char* name;
};

/// Every flag of `CpuFeatures` with its name, in the order reports list them.
inline constexpr FeatureName kFeatureNames[] = {
    {&CpuFeatures::sse3, "SSE3"},
    {&CpuFeatures::ssse3, "SSSE3"},
    {&CpuFeatures::sse41, "SSE4.1"},
    {&CpuFeatures::sse42, "SSE4.2"},
    {&CpuFeatures::popcnt, "POPCNT"},
    {&CpuFeatures::lzcnt, "LZCNT"},
    {&CpuFeatures::bmi1, "BMI1"},
    {&CpuFeatures::bmi2, "BMI2"},
    {&CpuFeatures::avx, "AVX"},
    {&CpuFeatures::avx2, "AVX2"},
    {&CpuFeatures::fma, "FMA"},
    {&CpuFeatures::f16c, "F16C"},
    {&CpuFeatures::avx512f, "AVX512F"},
    {&CpuFeatures::avx512dq, "AVX512DQ"},
    {&CpuFeatures::avx512bw, "AVX512BW"},
    {&CpuFeatures::avx512vl, "AVX512VL"},
    {&CpuFeatures::avx512vpopcntdq, "AVX512_VPOPCNTDQ"},
    {&CpuFeatures::avx512vnni, "AVX512_VNNI"},
    {&CpuFeatures::avx512bitalg, "AVX512_BITALG"},
    {&CpuFeatures::avx512vbmi, "AVX512_VBMI"},
    {&CpuFeatures::neon, "NEON"},
    {&CpuFeatures::dotprod, "DOTPROD"},
};

/// The name of `flag` ("?" when it is missing from kFeatureNames).
inline constexpr const char* feature_name(bool CpuFeatures::*flag) noexcept {
  for (const FeatureName& f : kFeatureNames)
    if (f.flag == flag) return f.name;
  return "?";
}

}  // namespace detail::cpu

}  // namespace mbok

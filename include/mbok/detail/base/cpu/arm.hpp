#pragma once
#include "../../guard.hpp"
#include "features.hpp"

#if defined(__linux__)
#include <sys/auxv.h>
#endif

namespace mbok::detail::cpu {

/// Advanced SIMD is architectural on AArch64; the dot-product extension is read from hwcap.
inline CpuFeatures read_arm_features() noexcept {
  CpuFeatures f;
  f.neon = true;
#if defined(__linux__) && defined(AT_HWCAP)
  const unsigned long hwcap = getauxval(AT_HWCAP);
  f.dotprod = (hwcap & (1ul << 20)) != 0;  // HWCAP_ASIMDDP
#endif
  return f;
}

}  // namespace mbok::detail::cpu

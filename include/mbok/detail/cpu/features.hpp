#pragma once
#include "../guard.hpp"

namespace mbok {

/// What the CPU and the operating system support, as read once per program.
struct CpuFeatures {
  bool popcnt = false;
  bool avx2 = false;          ///< AVX2 + FMA + BMI2, with OS support for ymm state
  bool avx512f = false;       ///< with OS support for zmm and opmask state
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vpopcntdq = false;
  bool avx512vnni = false;    ///< VPDPBUSD on zmm
  bool avx512bitalg = false;
  bool neon = false;          ///< AArch64 Advanced SIMD
  bool dotprod = false;       ///< AArch64 SDOT/UDOT
};

}  // namespace mbok

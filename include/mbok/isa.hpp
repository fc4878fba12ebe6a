#pragma once
/// \file
/// Instruction-set tiers, CPU detection and the choice of kernels at run time.
///
/// Which ISA runs, strongest rule first:
/// 1. a `ScopedIsaLimit` alive in the program (tests, benchmarks); it replaces rule 2;
/// 2. the `MBOK_ISA` environment variable: `scalar`, `avx2`, `avx512` or `neon`, read at
///    every `active_isa()` call; an empty or unset variable means no limit;
/// 3. detection: the best ISA that is both compiled in and supported by the CPU and OS.
/// A limit names the best tier allowed: the active ISA is the best supported tier at or
/// below it in the same family (x86: scalar < avx2 < avx512; AArch64: scalar < neon), so an
/// override never enables what the CPU lacks. Naming the other family's ISA gives scalar.
/// An unknown `MBOK_ISA` value makes `active_isa()` throw `InvalidArgument` naming it.

#define MBOK_INTERNAL_INCLUDE
#include "config.hpp"
#include "detail/cpu/features.hpp"
#if MBOK_ARCH_X86_64 && (defined(__GNUC__) || defined(__clang__))
#include "detail/cpu/x86.hpp"
#endif
#if MBOK_ARCH_AARCH64
#include "detail/cpu/arm.hpp"
#endif
#undef MBOK_INTERNAL_INCLUDE
#include "error.hpp"

#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace mbok {

/// Kernel tiers. `avx512` needs F + BW + VL + VPOPCNTDQ (VNNI is used when present).
enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2, neon = 3 };

/// Every tier, in declaration order.
inline constexpr Isa kAllIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon};

/// "scalar", "avx2", "avx512" or "neon".
inline constexpr const char* isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "unknown";
}

/// Parses an ISA name; throws `InvalidArgument` naming the text and the valid names.
inline Isa parse_isa(std::string_view name) {
  for (Isa isa : kAllIsas)
    if (name == isa_name(isa)) return isa;
  throw InvalidArgument(detail::concat("mbok: unknown ISA '", name,
                                       "' (expected scalar, avx2, avx512 or neon)"));
}

/// Features of this CPU, read once (CPUID + XGETBV on x86, hwcap on AArch64).
inline const CpuFeatures& cpu_features() noexcept {
  static const CpuFeatures features = [] {
#if MBOK_ARCH_X86_64 && (defined(__GNUC__) || defined(__clang__))
    return detail::cpu::read_x86_features();
#elif MBOK_ARCH_AARCH64
    return detail::cpu::read_arm_features();
#else
    return CpuFeatures{};
#endif
  }();
  return features;
}

/// True when this build contains kernels for `isa`.
inline constexpr bool isa_compiled(Isa isa) noexcept {
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2:
    case Isa::avx512: return MBOK_HAS_X86_KERNELS != 0;
    case Isa::neon: return MBOK_HAS_NEON_KERNELS != 0;
  }
  return false;
}

/// True when the CPU and OS can run `isa` (whether or not it is compiled in).
inline bool cpu_supports(Isa isa) noexcept {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return f.avx2;
    case Isa::avx512: return f.avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vpopcntdq;
    case Isa::neon: return f.neon;
  }
  return false;
}

/// True when `isa` is compiled in and the CPU supports it.
inline bool isa_available(Isa isa) noexcept { return isa_compiled(isa) && cpu_supports(isa); }

/// Available ISAs, best first (scalar is always last).
inline std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::neon, Isa::scalar})
    if (isa_available(isa)) out.push_back(isa);
  return out;
}

/// The best available ISA, ignoring every override.
inline Isa detected_isa() noexcept {
  static const Isa best = available_isas().front();
  return best;
}

namespace detail {

inline constexpr int isa_family(Isa isa) noexcept { return isa == Isa::neon ? 1 : 0; }

inline constexpr int isa_rank(Isa isa) noexcept {
  return isa == Isa::scalar ? 0 : isa == Isa::avx2 ? 1 : isa == Isa::avx512 ? 2 : 1;
}

/// The best available ISA at or below `limit` (see the file comment).
inline Isa best_at_or_below(Isa limit) noexcept {
  Isa best = Isa::scalar;
  for (Isa isa : kAllIsas) {
    if (!isa_available(isa) || isa == Isa::scalar) continue;
    if (isa_family(isa) != isa_family(limit) || isa_rank(isa) > isa_rank(limit)) continue;
    if (isa_rank(isa) > isa_rank(best)) best = isa;
  }
  return best;
}

// -1 when no scoped limit is alive, else the limit's Isa value.
inline std::atomic<int>& scoped_isa_limit() noexcept {
  static std::atomic<int> limit{-1};
  return limit;
}

}  // namespace detail

/// The ISA the kernels use now (see the file comment for the rules).
/// Throws `InvalidArgument` when `MBOK_ISA` holds an unknown name.
inline Isa active_isa() {
  const int scoped = detail::scoped_isa_limit().load(std::memory_order_acquire);
  if (scoped >= 0) return detail::best_at_or_below(static_cast<Isa>(scoped));
  const char* env = std::getenv("MBOK_ISA");
  if (env == nullptr || *env == '\0') return detected_isa();
  for (Isa isa : kAllIsas)
    if (std::string_view(env) == isa_name(isa)) return detail::best_at_or_below(isa);
  throw InvalidArgument(detail::concat("mbok: environment variable MBOK_ISA='", env,
                                       "' is not an ISA (expected scalar, avx2, avx512 or "
                                       "neon, or unset)"));
}

/// Limits the active ISA to `limit` (or the best available tier below it) while alive.
/// Meant for tests and benchmarks that compare paths; limits nest (the inner one wins while
/// it lives) and are process-wide, so set them from one thread. Throws `InvalidArgument`
/// when `limit` is not available on this CPU and build, so a test never believes it ran a
/// path it did not.
class ScopedIsaLimit {
 public:
  explicit ScopedIsaLimit(Isa limit)
      : previous_(detail::scoped_isa_limit().load(std::memory_order_acquire)) {
    detail::require(isa_available(limit), "ScopedIsaLimit: ISA '", isa_name(limit),
                    "' is not available on this CPU and build");
    detail::scoped_isa_limit().store(static_cast<int>(limit), std::memory_order_release);
  }
  ~ScopedIsaLimit() { detail::scoped_isa_limit().store(previous_, std::memory_order_release); }
  ScopedIsaLimit(const ScopedIsaLimit&) = delete;
  ScopedIsaLimit& operator=(const ScopedIsaLimit&) = delete;

 private:
  int previous_;
};

}  // namespace mbok

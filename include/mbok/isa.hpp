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
///
/// Detection: a tier is supported when the CPU (and OS) has every extension its code region
/// is compiled for (the `target(...)` list of `detail/products/<isa>/begin.hpp`), so no
/// instruction the compiler may emit there can fault. The rule is a pure function of a
/// `CpuFeatures` value (`cpu_supports(isa, features)`, `available_isas(features)`):
/// - avx2: SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT, LZCNT, BMI1, BMI2, AVX, AVX2, FMA;
/// - avx512: all of avx2's, and F16C, AVX512F, AVX512DQ, AVX512BW, AVX512VL and
///   AVX512_VPOPCNTDQ. AVX512_VNNI is optional: the region is compiled with it, but its only
///   VNNI instructions are in the int8 product's VNNI variant, which runs only when the flag
///   is set (the other variant needs AVX512BW alone); AVX512_VBMI likewise, for the int8
///   LUT product's VBMI functions;
/// - neon: Advanced SIMD (DOTPROD optional, likewise used only when its flag is set).
///
/// A limit that lowers the tier is not an error (a script that asks for avx512 still runs
/// on a CPU without it). To find out what runs, `isa_report()` returns one line naming the
/// compiled tiers, the features that matter, the limit and where it came from, the active
/// tier and, when the limit was lowered, why. The library never prints it; callers may.

#include "config.hpp"

#include "detail/base/cpu/features.hpp"
#if MBOK_ARCH_X86_64 && (defined(__GNUC__) || defined(__clang__))
#include "detail/base/cpu/x86.hpp"
#endif
#if MBOK_ARCH_AARCH64
#include "detail/base/cpu/arm.hpp"
#endif
#include "error.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace mbok {

/// Kernel tiers (see the file comment for what each needs).
enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2, neon = 3 };

/// Every tier, in declaration order.
inline constexpr Isa kAllIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon};

/// "scalar", "avx2", "avx512" or "neon".
inline constexpr const char* isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::neon:
      return "neon";
  }
  return "unknown";
}

/// Parses an ISA name; throws `InvalidArgument` naming the text and the valid names.
inline Isa parse_isa(std::string_view name) {
  for (Isa isa : kAllIsas)
    if (name == isa_name(isa)) return isa;
  throw InvalidArgument(
      detail::concat("mbok: unknown ISA '", name, "' (expected scalar, avx2, avx512 or neon)"));
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
    case Isa::scalar:
      return true;
    case Isa::avx2:
    case Isa::avx512:
      return MBOK_HAS_X86_KERNELS != 0;
    case Isa::neon:
      return MBOK_HAS_NEON_KERNELS != 0;
  }
  return false;
}

namespace detail {

/// A CPU feature a tier's code region is compiled for, with the token that enables it in
/// the region's `target(...)` list (begin.hpp); a test checks that the two lists agree.
struct TierFeature {
  bool CpuFeatures::*flag;
  const char* target;
};

/// A read-only list of tier features.
struct TierFeatureList {
  const TierFeature* first = nullptr;
  std::size_t count = 0;
  constexpr const TierFeature* begin() const noexcept { return first; }
  constexpr const TierFeature* end() const noexcept { return first + count; }
};

template <std::size_t N>
constexpr TierFeatureList tier_list(const TierFeature (&a)[N]) noexcept {
  return {a, N};
}

// What the avx2 region is compiled for. "avx2" implies AVX and SSE3 to SSE4.2 in GCC and
// clang, so those are required too.
inline constexpr TierFeature kAvx2Features[] = {
    {&CpuFeatures::sse3, "sse3"},     {&CpuFeatures::ssse3, "ssse3"},
    {&CpuFeatures::sse41, "sse4.1"},  {&CpuFeatures::sse42, "sse4.2"},
    {&CpuFeatures::popcnt, "popcnt"}, {&CpuFeatures::lzcnt, "lzcnt"},
    {&CpuFeatures::bmi1, "bmi"},      {&CpuFeatures::bmi2, "bmi2"},
    {&CpuFeatures::avx, "avx"},       {&CpuFeatures::avx2, "avx2"},
    {&CpuFeatures::fma, "fma"},
};

// What the avx512 region is compiled for beyond the avx2 list. clang's "avx512f" implies
// F16C, so F16C is required too.
inline constexpr TierFeature kAvx512Features[] = {
    {&CpuFeatures::f16c, "f16c"},         {&CpuFeatures::avx512f, "avx512f"},
    {&CpuFeatures::avx512dq, "avx512dq"}, {&CpuFeatures::avx512bw, "avx512bw"},
    {&CpuFeatures::avx512vl, "avx512vl"}, {&CpuFeatures::avx512vpopcntdq, "avx512vpopcntdq"},
};

// Used by the avx512 tier but not required: every instruction of these extensions sits in a
// code path that runs only when the CPU has the flag. VNNI is in the region's target list
// (see the file comment); VBMI only in the target attributes of the int8 LUT product's VBMI
// functions.
inline constexpr TierFeature kAvx512Guarded[] = {
    {&CpuFeatures::avx512vnni, "avx512vnni"},
    {&CpuFeatures::avx512vbmi, "avx512vbmi"},
};

inline constexpr TierFeature kNeonFeatures[] = {{&CpuFeatures::neon, "neon"}};
inline constexpr TierFeature kNeonGuarded[] = {{&CpuFeatures::dotprod, "dotprod"}};

/// The features `isa` requires beyond those of `tier_below(isa)`.
inline constexpr TierFeatureList tier_own_features(Isa isa) noexcept {
  switch (isa) {
    case Isa::scalar:
      return {};
    case Isa::avx2:
      return tier_list(kAvx2Features);
    case Isa::avx512:
      return tier_list(kAvx512Features);
    case Isa::neon:
      return tier_list(kNeonFeatures);
  }
  return {};
}

/// The features compiled into `isa`'s region that it uses only when the CPU has them.
inline constexpr TierFeatureList tier_guarded_features(Isa isa) noexcept {
  switch (isa) {
    case Isa::avx512:
      return tier_list(kAvx512Guarded);
    case Isa::neon:
      return tier_list(kNeonGuarded);
    default:
      return {};
  }
}

/// The tier whose requirements `isa` includes (scalar, which needs nothing, for the first
/// SIMD tier of a family).
inline constexpr Isa tier_below(Isa isa) noexcept {
  return isa == Isa::avx512 ? Isa::avx2 : Isa::scalar;
}

inline constexpr bool has_all(const CpuFeatures& f, TierFeatureList list) noexcept {
  for (const TierFeature& t : list)
    if (!(f.*(t.flag))) return false;
  return true;
}

}  // namespace detail

/// True when a CPU and OS with features `f` can run `isa`'s kernels: `f` has every extension
/// `isa`'s code region is compiled for (see the file comment). A pure function; it does not
/// ask whether `isa` is compiled in.
inline constexpr bool cpu_supports(Isa isa, const CpuFeatures& f) noexcept {
  if (isa == Isa::scalar) return true;
  return detail::has_all(f, detail::tier_own_features(isa)) &&
         cpu_supports(detail::tier_below(isa), f);
}

/// True when this CPU and OS can run `isa` (whether or not it is compiled in).
inline bool cpu_supports(Isa isa) noexcept { return cpu_supports(isa, cpu_features()); }

/// The names of the extensions `isa` needs that features `f` lack, space-separated, in the
/// order of `CpuFeatures` ("" when none).
inline std::string missing_features(Isa isa, const CpuFeatures& f) {
  std::string out;
  if (isa == Isa::scalar) return out;
  out = missing_features(detail::tier_below(isa), f);
  for (const detail::TierFeature& t : detail::tier_own_features(isa))
    if (!(f.*(t.flag))) {
      if (!out.empty()) out += ' ';
      out += detail::cpu::feature_name(t.flag);
    }
  return out;
}

/// True when `isa` is compiled in and a CPU with features `f` supports it.
inline constexpr bool isa_available(Isa isa, const CpuFeatures& f) noexcept {
  return isa_compiled(isa) && cpu_supports(isa, f);
}

/// True when `isa` is compiled in and the CPU supports it.
inline bool isa_available(Isa isa) noexcept { return isa_available(isa, cpu_features()); }

/// The ISAs available with features `f`, best first (scalar is always last).
inline std::vector<Isa> available_isas(const CpuFeatures& f) {
  std::vector<Isa> out;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::neon, Isa::scalar})
    if (isa_available(isa, f)) out.push_back(isa);
  return out;
}

/// Available ISAs, best first (scalar is always last).
inline std::vector<Isa> available_isas() { return available_isas(cpu_features()); }

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

/// The best ISA available with features `f` at or below `limit` (see the file comment).
inline constexpr Isa best_at_or_below(Isa limit, const CpuFeatures& f) noexcept {
  Isa best = Isa::scalar;
  for (Isa isa : kAllIsas) {
    if (!isa_available(isa, f) || isa == Isa::scalar) continue;
    if (isa_family(isa) != isa_family(limit) || isa_rank(isa) > isa_rank(limit)) continue;
    if (isa_rank(isa) > isa_rank(best)) best = isa;
  }
  return best;
}

/// The best available ISA at or below `limit` on this CPU.
inline Isa best_at_or_below(Isa limit) noexcept { return best_at_or_below(limit, cpu_features()); }

// -1 when no scoped limit is alive, else the limit's Isa value.
inline std::atomic<int>& scoped_isa_limit() noexcept {
  static std::atomic<int> limit{-1};
  return limit;
}

/// Where the limit on the active ISA comes from.
enum class IsaLimitSource { none, scoped, env };

/// The `isa_report()` line for a CPU with features `f` and a limit named `limit` from
/// `source` (`limit` is ignored for none; from env it may be any text, and one that names no
/// ISA is reported as invalid). A pure function of its arguments and the build, so tests
/// can report on CPUs they do not run on.
inline std::string make_isa_report(const CpuFeatures& f, IsaLimitSource source,
                                   std::string_view limit) {
  std::string out = "mbok isa: compiled";
  for (Isa isa : kAllIsas)
    if (isa_compiled(isa)) out += concat(" ", isa_name(isa));
  // The features that matter: those of this architecture's tiers, required or guarded.
  constexpr bool known_arch = MBOK_ARCH_X86_64 || MBOK_ARCH_AARCH64;
  constexpr int family = MBOK_ARCH_AARCH64 ? 1 : 0;
  std::string has, lacks;
  for (Isa isa : kAllIsas) {
    if (!known_arch || isa_family(isa) != family) continue;
    for (TierFeatureList list : {tier_own_features(isa), tier_guarded_features(isa)})
      for (const TierFeature& t : list) {
        std::string& to = (f.*(t.flag)) ? has : lacks;
        if (!to.empty()) to += ' ';
        to += cpu::feature_name(t.flag);
      }
  }
  out += concat("; cpu: ", has.empty() ? "-" : has);
  if (!lacks.empty()) out += concat("; cpu lacks: ", lacks);
  if (source == IsaLimitSource::none) {
    return out + concat("; limit: none; active: ", isa_name(available_isas(f).front()));
  }
  Isa requested = Isa::scalar;
  bool valid = false;
  for (Isa isa : kAllIsas)
    if (limit == isa_name(isa)) {
      requested = isa;
      valid = true;
    }
  if (!valid)
    return out + concat("; limit: invalid MBOK_ISA='", limit,
                        "' (env); active: none (active_isa() throws InvalidArgument)");
  const Isa active = best_at_or_below(requested, f);
  out +=
      concat("; limit: ", limit, source == IsaLimitSource::scoped ? " (scoped)" : " (env MBOK_ISA)",
             "; active: ", isa_name(active));
  if (active != requested) {
    out += concat("; requested ", isa_name(requested), ", lowered to ", isa_name(active));
    if (!isa_compiled(requested))
      out += concat(": this build has no ", isa_name(requested), " products");
    else
      out += concat(": CPU lacks ", missing_features(requested, f));
  }
  return out;
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

/// One human-readable line on the choice of kernels, for logs: the compiled tiers, the CPU
/// features that matter (those present, then those lacking), the limit and its source
/// (`scoped`, `env MBOK_ISA`, or `none`), the active tier and, when the limit was lowered,
/// why, e.g. `requested avx512, lowered to avx2: CPU lacks AVX512_VPOPCNTDQ`. An invalid
/// `MBOK_ISA` is reported, not thrown. The library never prints this line itself.
inline std::string isa_report() {
  const int scoped = detail::scoped_isa_limit().load(std::memory_order_acquire);
  if (scoped >= 0)
    return detail::make_isa_report(cpu_features(), detail::IsaLimitSource::scoped,
                                   isa_name(static_cast<Isa>(scoped)));
  const char* env = std::getenv("MBOK_ISA");
  if (env == nullptr || *env == '\0')
    return detail::make_isa_report(cpu_features(), detail::IsaLimitSource::none, {});
  return detail::make_isa_report(cpu_features(), detail::IsaLimitSource::env, env);
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

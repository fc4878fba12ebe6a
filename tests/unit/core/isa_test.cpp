// ISA detection, the MBOK_ISA override and the scoped limit.
#include <mbok/isa.hpp>
#include <mbok/products.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"

using namespace mbok;

namespace {
// The "flags" (x86) or "Features" (arm) line of /proc/cpuinfo, empty when absent.
std::set<std::string> cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::set<std::string> out;
      for (std::string w; words >> w;) out.insert(w);
      return out;
    }
  }
  return {};
}
}  // namespace

TEST_CASE("available ISAs are reported", "[isa]") {
  std::string list;
  for (Isa isa : available_isas()) list += std::string(isa_name(isa)) + " ";
  for (Isa isa : kAllIsas)
    if (!isa_available(isa))
      WARN("ISA " << isa_name(isa) << " not available here: its tests are skipped");
  INFO("available: " << list);
  CHECK(available_isas().back() == Isa::scalar);
  CHECK(available_isas().front() == detected_isa());
}

TEST_CASE("ISA names round-trip and unknown names are rejected", "[isa]") {
  for (Isa isa : kAllIsas) CHECK(parse_isa(isa_name(isa)) == isa);
  CHECK_THROWS_WITH(parse_isa("avx1024"), test::contains("unknown ISA 'avx1024'"));
}

TEST_CASE("detection agrees with /proc/cpuinfo", "[isa]") {
  const auto flags = cpuinfo_flags();
  if (std::getenv("MBOK_EXPECT_NO_AVX512") != nullptr) {
    // Set by the qemu-x86_64 run: the emulated CPU has AVX2 but no AVX-512, while
    // /proc/cpuinfo still describes the host.
    INFO(isa_report());
    CHECK(cpu_supports(Isa::avx2));
    CHECK_FALSE(cpu_supports(Isa::avx512));
    CHECK(detected_isa() == Isa::avx2);
    return;
  }
  if (flags.empty()) {
    WARN("/proc/cpuinfo has no flags line: nothing to compare");
    return;
  }
  const CpuFeatures& f = cpu_features();
#if MBOK_ARCH_X86_64
  // The kernel hides what the OS does not enable, as XGETBV does for us. Names as Linux
  // spells them ("pni" is SSE3). LZCNT is left out: Linux lists it as "abm" only where the
  // kernel keeps that flag (some virtual machines hide it from /proc/cpuinfo alone).
  const std::pair<bool CpuFeatures::*, const char*> names[] = {
      {&CpuFeatures::sse3, "pni"},
      {&CpuFeatures::ssse3, "ssse3"},
      {&CpuFeatures::sse41, "sse4_1"},
      {&CpuFeatures::sse42, "sse4_2"},
      {&CpuFeatures::popcnt, "popcnt"},
      {&CpuFeatures::bmi1, "bmi1"},
      {&CpuFeatures::bmi2, "bmi2"},
      {&CpuFeatures::avx, "avx"},
      {&CpuFeatures::avx2, "avx2"},
      {&CpuFeatures::fma, "fma"},
      {&CpuFeatures::f16c, "f16c"},
      {&CpuFeatures::avx512f, "avx512f"},
      {&CpuFeatures::avx512dq, "avx512dq"},
      {&CpuFeatures::avx512bw, "avx512bw"},
      {&CpuFeatures::avx512vl, "avx512vl"},
      {&CpuFeatures::avx512vpopcntdq, "avx512_vpopcntdq"},
      {&CpuFeatures::avx512vnni, "avx512_vnni"},
      {&CpuFeatures::avx512bitalg, "avx512_bitalg"},
      {&CpuFeatures::avx512vbmi, "avx512vbmi"},
  };
  for (const auto& [flag, name] : names) {
    INFO("flag " << name);
    CHECK(f.*flag == (flags.count(name) > 0));
  }
  const auto has = [&](std::initializer_list<const char*> list) {
    for (const char* name : list)
      if (flags.count(name) == 0) return false;
    return true;
  };
  const bool avx2 = f.lzcnt && has({"pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "bmi1", "bmi2",
                                    "avx", "avx2", "fma"});
  CHECK(cpu_supports(Isa::avx2) == avx2);
  CHECK(cpu_supports(Isa::avx512) ==
        (avx2 && has({"f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vpopcntdq"})));
  CHECK_FALSE(cpu_supports(Isa::neon));
#elif MBOK_ARCH_AARCH64
  CHECK(f.neon);
  // qemu-aarch64 in user mode shows the host's /proc/cpuinfo (an x86 "flags" line), while
  // hwcap describes the emulated CPU: only a real AArch64 line (which lists asimd) compares.
  if (flags.count("asimd") == 0) {
    WARN("/proc/cpuinfo does not describe an AArch64 CPU (emulated?): dotprod not compared");
    return;
  }
  CHECK(f.dotprod == (flags.count("asimddp") > 0));
#endif
}

namespace {

// A CPU with every x86 extension the tiers know (AVX-512 included), OS support included.
CpuFeatures full_x86() {
  CpuFeatures f;
  for (Isa isa : {Isa::avx2, Isa::avx512}) {
    for (const auto& t : detail::tier_own_features(isa)) f.*(t.flag) = true;
    for (const auto& t : detail::tier_guarded_features(isa)) f.*(t.flag) = true;
  }
  f.avx512bitalg = true;
  return f;
}

// What available_isas(f) must be when the CPU supports exactly `supported` (best first).
std::vector<Isa> expected_available(std::initializer_list<Isa> supported) {
  std::vector<Isa> out;
  for (Isa isa : supported)
    if (isa_compiled(isa)) out.push_back(isa);
  out.push_back(Isa::scalar);
  return out;
}

// The extensions named in every target("...") list of a code region's begin.hpp.
std::vector<std::string> region_targets(const std::string& isa) {
  const std::string path =
      std::string(MBOK_SOURCE_DIR) + "/include/mbok/detail/products/" + isa + "/begin.hpp";
  std::ifstream in(path);
  INFO("reading " << path);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  std::vector<std::string> out;
  for (std::size_t at = s.find("target(\""); at != std::string::npos;
       at = s.find("target(\"", at + 1)) {
    const std::size_t first = at + 8, last = s.find('"', first);
    std::istringstream list(s.substr(first, last - first));
    for (std::string token; std::getline(list, token, ',');) out.push_back(token);
  }
  return out;
}

}  // namespace

TEST_CASE("tiers follow from the feature set alone", "[isa][detection]") {
  const CpuFeatures all = full_x86();
  CHECK(cpu_supports(Isa::avx2, all));
  CHECK(cpu_supports(Isa::avx512, all));
  CHECK_FALSE(cpu_supports(Isa::neon, all));
  CHECK(available_isas(all) == expected_available({Isa::avx512, Isa::avx2}));
  CHECK(missing_features(Isa::avx512, all).empty());
  CHECK(cpu_supports(Isa::scalar, CpuFeatures{}));
  CHECK(available_isas(CpuFeatures{}) == std::vector<Isa>{Isa::scalar});

  SECTION("AVX-512 F, BW, VL and VPOPCNTDQ without DQ: the avx2 tier only") {
    CpuFeatures f = all;
    f.avx512dq = false;
    CHECK_FALSE(cpu_supports(Isa::avx512, f));
    CHECK(cpu_supports(Isa::avx2, f));
    CHECK(available_isas(f) == expected_available({Isa::avx2}));
    CHECK(missing_features(Isa::avx512, f) == "AVX512DQ");
    CHECK(detail::best_at_or_below(Isa::avx512, f) ==
          (isa_compiled(Isa::avx2) ? Isa::avx2 : Isa::scalar));
  }
  SECTION("AVX2 without FMA or BMI: scalar only") {
    for (bool CpuFeatures::*flag : {&CpuFeatures::fma, &CpuFeatures::bmi1, &CpuFeatures::bmi2}) {
      CpuFeatures f = all;
      f.*flag = false;
      INFO(detail::cpu::feature_name(flag));
      CHECK_FALSE(cpu_supports(Isa::avx2, f));
      CHECK_FALSE(cpu_supports(Isa::avx512, f));
      CHECK(available_isas(f) == std::vector<Isa>{Isa::scalar});
      CHECK(missing_features(Isa::avx2, f) == detail::cpu::feature_name(flag));
    }
  }
  SECTION("every extension a region is compiled for is required") {
    for (Isa isa : {Isa::avx2, Isa::avx512})
      for (const auto& t : detail::tier_own_features(isa)) {
        CpuFeatures f = all;
        f.*(t.flag) = false;
        INFO("without " << detail::cpu::feature_name(t.flag));
        CHECK_FALSE(cpu_supports(Isa::avx512, f));
        CHECK(cpu_supports(Isa::avx2, f) == (isa == Isa::avx512));
        CHECK(missing_features(Isa::avx512, f) == detail::cpu::feature_name(t.flag));
      }
  }
  SECTION("guarded extensions are optional") {
    CpuFeatures f = all;
    for (const auto& t : detail::tier_guarded_features(Isa::avx512)) f.*(t.flag) = false;
    f.avx512bitalg = false;
    CHECK(cpu_supports(Isa::avx512, f));
  }
  SECTION("an OS that does not save zmm state hides AVX-512: features read false") {
    CpuFeatures f = all;
    f.avx512f = f.avx512dq = f.avx512bw = f.avx512vl = f.avx512vpopcntdq = f.avx512vnni = false;
    f.avx512vbmi = false;
    CHECK(available_isas(f) == expected_available({Isa::avx2}));
  }
  SECTION("AArch64: NEON alone; DOTPROD optional") {
    CpuFeatures f;
    f.neon = true;
    CHECK(cpu_supports(Isa::neon, f));
    CHECK_FALSE(cpu_supports(Isa::avx2, f));
    CHECK(available_isas(f) == expected_available({Isa::neon}));
  }
  SECTION("this CPU: the same function on the features read") {
    for (Isa isa : kAllIsas) CHECK(cpu_supports(isa) == cpu_supports(isa, cpu_features()));
    CHECK(available_isas() == available_isas(cpu_features()));
  }
}

TEST_CASE("each region is compiled only for extensions its tier requires or guards",
          "[isa][detection]") {
  for (Isa isa : {Isa::avx2, Isa::avx512}) {
    std::set<std::string> allowed;
    for (Isa tier = isa; tier != Isa::scalar; tier = detail::tier_below(tier)) {
      for (const auto& t : detail::tier_own_features(tier)) allowed.insert(t.target);
      for (const auto& t : detail::tier_guarded_features(tier)) allowed.insert(t.target);
    }
    const auto targets = region_targets(isa_name(isa));
    INFO("ISA " << isa_name(isa));
    CHECK(targets.size() >= 2);  // the clang and the GCC list
    for (const std::string& token : targets) {
      INFO("target extension '" << token << "'");
      CHECK(allowed.count(token) == 1);
    }
  }
}

TEST_CASE("isa_report names the limit, its source and why it was lowered", "[isa][report]") {
  using detail::IsaLimitSource;
  const CpuFeatures all = full_x86();

  const std::string none = detail::make_isa_report(all, IsaLimitSource::none, {});
  CHECK_THAT(none, test::contains("limit: none"));
  CHECK(none.find('\n') == std::string::npos);
  CHECK(none.find("lowered") == std::string::npos);
  CHECK_THAT(none, test::contains("compiled scalar"));

  const std::string invalid = detail::make_isa_report(all, IsaLimitSource::env, "sse9");
  CHECK_THAT(invalid, test::contains("limit: invalid MBOK_ISA='sse9'"));

#if MBOK_ARCH_X86_64
  const std::string scoped = detail::make_isa_report(all, IsaLimitSource::scoped, "avx2");
  CHECK_THAT(scoped, test::contains("limit: avx2 (scoped)"));
  CHECK(scoped.find("lowered") == std::string::npos);  // a limit below the CPU is not lowered

  CHECK_THAT(none, test::contains("cpu: SSE3 SSSE3"));
  CpuFeatures no_popcntdq = all;
  no_popcntdq.avx512vpopcntdq = false;
  const std::string lowered = detail::make_isa_report(no_popcntdq, IsaLimitSource::env, "avx512");
  INFO(lowered);
  CHECK_THAT(lowered, test::contains("cpu lacks: AVX512_VPOPCNTDQ"));
  CHECK_THAT(lowered, test::contains("limit: avx512 (env MBOK_ISA)"));
  if (isa_compiled(Isa::avx512)) {
    CHECK_THAT(none, test::contains("compiled scalar avx2 avx512"));
    CHECK_THAT(none, test::contains("active: avx512"));
    CHECK_THAT(lowered, test::contains("active: avx2"));
    CHECK_THAT(lowered,
               test::contains("requested avx512, lowered to avx2: CPU lacks AVX512_VPOPCNTDQ"));
  } else {
    CHECK_THAT(lowered, test::contains("lowered to scalar: this build has no avx512 products"));
  }
  const std::string other = detail::make_isa_report(all, IsaLimitSource::env, "neon");
  CHECK_THAT(other,
             test::contains("requested neon, lowered to scalar: this build has no neon products"));
#endif
}

namespace {
// Sets an environment variable for one scope and restores it after (POSIX setenv).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      old_ = old;
      had_ = true;
    }
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};
}  // namespace

TEST_CASE("isa_report on this CPU follows the environment and scoped limits", "[isa][report]") {
  {
    ScopedEnv env("MBOK_ISA", nullptr);
    const std::string r = isa_report();
    INFO(r);
    CHECK_THAT(r, test::contains("limit: none"));
    CHECK_THAT(r, test::contains(std::string("active: ") + isa_name(detected_isa())));
  }
  {
    ScopedEnv env("MBOK_ISA", "avx512");
    const std::string r = isa_report();
    INFO(r);
    CHECK_THAT(r, test::contains("limit: avx512 (env MBOK_ISA)"));
    CHECK_THAT(r, test::contains(std::string("active: ") + isa_name(active_isa())));
    // On a CPU without AVX-512 (qemu-x86_64) the lowering is named, with the reason.
    if (!isa_available(Isa::avx512))
      CHECK_THAT(r, test::contains("requested avx512, lowered to " +
                                   std::string(isa_name(active_isa())) + ": "));
    else
      CHECK(r.find("lowered") == std::string::npos);
    {
      // A scoped limit replaces the environment, in the report too.
      ScopedIsaLimit limit(Isa::scalar);
      const std::string s = isa_report();
      CHECK_THAT(s, test::contains("limit: scalar (scoped); active: scalar"));
    }
  }
  {
    ScopedEnv env("MBOK_ISA", "avx1024");
    CHECK_THAT(isa_report(), test::contains("limit: invalid MBOK_ISA='avx1024'"));  // no throw
  }
}

namespace {
// The tiers this CPU must offer, best first, from /proc/cpuinfo alone (the lists of
// docs/design.md, written out here rather than taken from isa.hpp), or empty when it cannot
// tell: not x86-64, no flags line, or an emulated CPU the file does not describe. Under the
// qemu-x86_64 run (MBOK_EXPECT_NO_AVX512) the emulated CPU has AVX2 and no AVX-512.
std::vector<Isa> isas_from_cpuinfo() {
#if MBOK_ARCH_X86_64 && MBOK_HAS_X86_KERNELS
  if (std::getenv("MBOK_EXPECT_NO_AVX512") != nullptr) return {Isa::avx2, Isa::scalar};
  const auto flags = cpuinfo_flags();
  if (flags.empty()) return {};
  const auto has = [&](std::initializer_list<const char*> list) {
    for (const char* name : list)
      if (flags.count(name) == 0) return false;
    return true;
  };
  // LZCNT: Linux may hide "abm"; every CPU with AVX2 has it.
  const bool avx2 =
      has({"pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "bmi1", "bmi2", "avx", "avx2", "fma"});
  const bool avx512 =
      avx2 && has({"f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vpopcntdq"});
  std::vector<Isa> out;
  if (avx512) out.push_back(Isa::avx512);
  if (avx2) out.push_back(Isa::avx2);
  out.push_back(Isa::scalar);
  return out;
#else
  return {};
#endif
}
}  // namespace

TEST_CASE("the tiers offered are those /proc/cpuinfo implies, and each one runs", "[isa]") {
  const std::vector<Isa> expected = isas_from_cpuinfo();
  if (expected.empty()) {
    WARN("no independent list of tiers here (not x86-64 or no /proc/cpuinfo flags)");
    return;
  }
  CHECK(available_isas() == expected);
  CHECK(detected_isa() == expected.front());
  if (std::getenv("MBOK_ISA") == nullptr) CHECK(ProductSet().isa() == expected.front());
  for (Isa isa : kAllIsas) {
    INFO("tier " << isa_name(isa));
    const bool offered = std::find(expected.begin(), expected.end(), isa) != expected.end();
    CHECK(isa_available(isa) == offered);
    if (offered) {
      ScopedIsaLimit limit(isa);
      CHECK(active_isa() == isa);
      CHECK(ProductSet().isa() == isa);
    } else {
      CHECK_THROWS_WITH(ScopedIsaLimit(isa), test::contains("not available"));
    }
  }
  // test::for_each_isa, which every kernel test uses, visits exactly these tiers.
  std::vector<Isa> visited;
  test::for_each_isa([&](Isa isa) { visited.push_back(isa); });
  std::vector<Isa> want = expected;
  std::sort(want.begin(), want.end());
  std::sort(visited.begin(), visited.end());
  CHECK(visited == want);
}

TEST_CASE("scoped limits pick the requested tier and nest", "[isa]") {
  if (std::getenv("MBOK_ISA") == nullptr) CHECK(active_isa() == detected_isa());
  {
    ScopedIsaLimit outer(Isa::scalar);
    CHECK(active_isa() == Isa::scalar);
    CHECK(ProductSet().isa() == Isa::scalar);
    for (Isa isa : available_isas()) {
      ScopedIsaLimit inner(isa);
      CHECK(active_isa() == isa);
      CHECK(ProductSet().isa() == isa);
    }
    CHECK(active_isa() == Isa::scalar);
  }
  for (Isa isa : kAllIsas)
    if (!isa_available(isa)) {
      CHECK_THROWS_WITH(ScopedIsaLimit(isa), test::contains("not available"));
      CHECK_THROWS_AS(ProductSet(isa), InvalidArgument);
    }
}

// Run by ctest with MBOK_ISA set (see tests/CMakeLists.txt); without it, checks detection.
TEST_CASE("MBOK_ISA limits the active ISA and never enables what the CPU lacks", "[isa-env]") {
  const char* env = std::getenv("MBOK_ISA");
  if (env == nullptr || *env == '\0') {
    CHECK(active_isa() == detected_isa());
    return;
  }
  const std::string value = env;
  const std::string report = isa_report();
  INFO(report);
  if (value == "scalar" || value == "avx2" || value == "avx512" || value == "neon") {
    CHECK_THAT(report, test::contains("limit: " + value +
                                      " (env MBOK_ISA); active: " + isa_name(active_isa())));
    // Lowered exactly when the active tier is not the one named, and then the report says so.
    const bool lowered = std::string(isa_name(active_isa())) != value;
    CHECK((report.find("requested " + value + ", lowered to ") != std::string::npos) == lowered);
  } else {
    CHECK_THAT(report, test::contains("limit: invalid MBOK_ISA='" + value + "'"));
  }
  if (value == "scalar") {
    CHECK(active_isa() == Isa::scalar);
  } else if (value == "avx2") {
    CHECK(active_isa() == (isa_available(Isa::avx2) ? Isa::avx2 : Isa::scalar));
  } else if (value == "avx512") {
    CHECK(active_isa() == (isa_available(Isa::avx512) ? Isa::avx512
                           : isa_available(Isa::avx2) ? Isa::avx2
                                                      : Isa::scalar));
  } else if (value == "neon") {
    CHECK(active_isa() == (isa_available(Isa::neon) ? Isa::neon : Isa::scalar));
  } else {
    // Documented: an unknown value is an error naming it, never a silent fallback.
    CHECK_THROWS_WITH(active_isa(), test::contains("MBOK_ISA='" + value + "'"));
    CHECK_THROWS_AS(ProductSet(), InvalidArgument);
    // A scoped limit replaces the environment, so tests can still pick a path.
    ScopedIsaLimit limit(Isa::scalar);
    CHECK(active_isa() == Isa::scalar);
  }
}

// ISA detection, the MBOK_ISA override and the scoped limit.
#include <mbok/isa.hpp>
#include <mbok/kernels.hpp>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

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
    if (!isa_available(isa)) WARN("ISA " << isa_name(isa) << " not available here: its tests are skipped");
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
  // The kernel hides what the OS does not enable, as XGETBV does for us.
  CHECK(f.avx2 == (flags.count("avx2") && flags.count("fma") && flags.count("bmi2")));
  CHECK(f.avx512f == (flags.count("avx512f") > 0));
  CHECK(f.avx512bw == (flags.count("avx512bw") > 0));
  CHECK(f.avx512vl == (flags.count("avx512vl") > 0));
  CHECK(f.avx512vpopcntdq == (flags.count("avx512_vpopcntdq") > 0));
  CHECK(f.avx512vnni == (flags.count("avx512_vnni") > 0));
  CHECK(cpu_supports(Isa::avx512) ==
        (f.avx2 && flags.count("avx512f") && flags.count("avx512bw") && flags.count("avx512vl") &&
         flags.count("avx512_vpopcntdq")));
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

TEST_CASE("scoped limits pick the requested tier and nest", "[isa]") {
  if (std::getenv("MBOK_ISA") == nullptr) CHECK(active_isa() == detected_isa());
  {
    ScopedIsaLimit outer(Isa::scalar);
    CHECK(active_isa() == Isa::scalar);
    CHECK(KernelSet().isa() == Isa::scalar);
    for (Isa isa : available_isas()) {
      ScopedIsaLimit inner(isa);
      CHECK(active_isa() == isa);
      CHECK(KernelSet().isa() == isa);
    }
    CHECK(active_isa() == Isa::scalar);
  }
  for (Isa isa : kAllIsas)
    if (!isa_available(isa)) {
      CHECK_THROWS_WITH(ScopedIsaLimit(isa), test::contains("not available"));
      CHECK_THROWS_AS(KernelSet(isa), InvalidArgument);
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
    CHECK_THROWS_AS(KernelSet(), InvalidArgument);
    // A scoped limit replaces the environment, so tests can still pick a path.
    ScopedIsaLimit limit(Isa::scalar);
    CHECK(active_isa() == Isa::scalar);
  }
}

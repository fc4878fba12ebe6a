// mbok_bench entry point: records the machine's ISA tiers, thread count and OpenMP wait
// settings in the report's context, then runs every registered case (each bench/*.cpp
// registers its own).
#include <benchmark/benchmark.h>

#include <mbok/isa.hpp>
#include <mbok/parallel.hpp>

#include <cstdlib>
#include <string>

#include "baselines.hpp"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::string isas;
  for (mbok::Isa isa : mbok::available_isas())
    isas += std::string(isas.empty() ? "" : ",") + mbok::isa_name(isa);
  benchmark::AddCustomContext("mbok_isas", isas);
  benchmark::AddCustomContext("mbok_max_threads", std::to_string(mbok::max_threads()));
  benchmark::AddCustomContext("mbok_openblas", mbok::bench::have_openblas() ? "yes" : "no");
  // How idle OpenMP threads wait decides what a split costs (docs/decode.md, "Threads").
  std::string waits;
  for (const char* name : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"})
    if (const char* v = std::getenv(name))
      waits += std::string(waits.empty() ? "" : " ") + name + "=" + v;
  benchmark::AddCustomContext("mbok_omp_waits", waits.empty() ? "runtime default" : waits);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// The tiny_transformer binary end to end: the --quick pipeline (a tiny LLaMA, its teacher a
// Hugging Face directory, its Boolean models mbok files), resuming a finetuning run from its
// checkpoint, and the error messages of bad input. The corpus is the library's own
// headers, so the tests need no corpus package.

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "catch.hpp"

namespace fs = std::filesystem;

namespace {

struct Run {
  int status = -1;
  std::string output;
};

// Runs the binary with `args` (a shell fragment), stdout and stderr captured together, behind
// `launcher` (a shell fragment such as "mpiexec -n 2 ", or nothing).
Run run(const std::string& args, const fs::path& work, const std::string& launcher = "") {
  const fs::path log = work / "last_run.log";
  const std::string command =
      launcher + "'" + TINY_TRANSFORMER_BIN + "' " + args + " > '" + log.string() + "' 2>&1";
  const int raw = std::system(command.c_str());
  Run r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  std::ifstream in(log);
  std::ostringstream s;
  s << in.rdbuf();
  r.output = s.str();
  return r;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(TINY_TEST_WORK_DIR) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// About 300 kB of text: every public header of the library.
fs::path make_corpus(const fs::path& dir) {
  const fs::path out = dir / "corpus.txt";
  std::ofstream o(out, std::ios::binary);
  for (const auto& e : fs::recursive_directory_iterator(MBOK_INCLUDE_DIR))
    if (e.is_regular_file() && e.path().extension() == ".hpp")
      o << std::ifstream(e.path(), std::ios::binary).rdbuf();
  return out;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The shards next to the sharded checkpoint `manifest`, as "<rank>-of-<ranks>" (sorted).
std::vector<std::string> shard_files(const fs::path& manifest) {
  const std::string start = manifest.filename().string() + ".shard-";
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(manifest.parent_path())) {
    const std::string name = e.path().filename().string();
    if (name.rfind(start, 0) != 0) continue;
    const std::string rest = name.substr(start.size());  // <r>-of-<P>-<16 hex>
    out.push_back(rest.substr(0, rest.size() - 17));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("--quick runs the whole pipeline and finetuning beats post-training binarization",
          "[cli][quick]") {
  const fs::path dir = fresh_dir("quick");
  const fs::path corpus = make_corpus(dir);
  const Run r =
      run("--quick --out '" + (dir / "out").string() + "' --corpus '" + corpus.string() + "'", dir);
  INFO(r.output);
  REQUIRE(r.status == 0);
  const auto s = nlohmann::json::parse(read_file(dir / "out" / "summary.json"));

  // The teacher is a Hugging Face checkpoint directory with the run's tokenizer, and every
  // model an mbok file; the run printed the mbok-convert and mbok-run commands of its steps.
  const fs::path teacher = s["teacher"]["file"].get<std::string>();
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"})
    CHECK(fs::exists(teacher / f));
  for (const char* f : {"ptq-k1.mbok", "ptq-k2.mbok", "mbok-k1.mbok", "mbok-k2.mbok",
                        "latent-k1.mbok", "valid.txt"})
    CHECK(fs::exists(dir / "out" / f));
  CHECK_THAT(r.output, mbok::test::contains("$ mbok-convert " + teacher.string()));
  CHECK_THAT(r.output, mbok::test::contains("$ mbok-run perplexity -m " +
                                            (dir / "out" / "mbok-k2.mbok").string()));
  CHECK(s["corpus"]["vocab"].get<int>() == 256 + 100 + 2);  // --quick learns 100 merges

  // Pretraining lowered the validation loss.
  const auto& curve = s["teacher"]["curve"];
  REQUIRE(curve.size() >= 2);
  CHECK(curve.back()[2].get<double>() < curve.front()[2].get<double>() - 0.3);

  // Every assertion below is on a gap of at least 0.01 nats per token, where the quick
  // configuration's effects are 0.07 to 0.9: no difference in rounding between ISAs or
  // summation orders comes near it. Log-perplexity is the mean loss in nats per token.
  const auto& ev = s["evaluation"];
  auto log_ppl = [&](const std::string& model) {
    return std::log(ev[model]["perplexity"].get<double>());
  };
  constexpr double kClearGap = 0.01;

  // The K = 1 runs (where binarization loses most) lowered their validation loss from the
  // SVID starting point by a clear margin.
  REQUIRE(s["runs"].size() == 4);  // Boolean K=1, K=2, 1.5 bits; latent K=1
  for (const std::string run_name : {"mbok-k1", "latent-k1"}) {
    INFO(run_name);
    const auto& c = s["runs"][run_name]["curve"];
    CHECK(c.back()[2].get<double>() < c.front()[2].get<double>() - kClearGap);
  }

  // Post-training binarization costs the teacher clearly measurable loss at every variant
  // (else the configuration could not show what finetuning does), and Boolean finetuning
  // wins back at least a third of it on the full validation set.
  for (const std::string v : {"k1", "k2", "avg1.5"}) {
    const double teacher = log_ppl("teacher"), ptq = log_ppl("ptq-" + v),
                 finetuned = log_ppl("mbok-" + v);
    INFO(v << ": log-perplexity teacher " << teacher << ", post-training " << ptq << ", finetuned "
           << finetuned);
    REQUIRE(ptq - teacher > 2 * kClearGap);
    CHECK(ptq - finetuned > (ptq - teacher) / 3);
  }
  CHECK(log_ppl("mbok-k2") < log_ppl("mbok-k1") - kClearGap);
  CHECK(ev["teacher"]["tokens_per_second"]["eigen_float"].get<double>() > 0);
  CHECK(ev["mbok-k1"]["tokens_per_second"]["boolean_int8"].get<double>() > 0);
  // The Boolean optimizer's 8-bit accumulator: 1 byte + 1 bit per trainable weight (plus a
  // few per-tensor scalars), against 12 bytes of latent weight and Adam moments.
  CHECK(s["runs"]["mbok-k1"]["state_bytes_per_boolean_weight"].get<double>() < 1.2);
  CHECK(s["runs"]["latent-k1"]["state_bytes_per_boolean_weight"].get<double>() >= 12.0);

  const std::string report = read_file(dir / "out" / "report.md");
  CHECK_THAT(report, mbok::test::contains("Boolean finetuned"));
  CHECK((fs::exists(dir / "out" / "curves.png") || fs::exists(dir / "out" / "curves.svg")));

  // A second run finds the teacher and skips pretraining.
  const Run again = run(
      "--quick --out '" + (dir / "out").string() + "' --corpus '" + corpus.string() + "' pretrain",
      dir);
  REQUIRE(again.status == 0);
  CHECK_THAT(again.output, mbok::test::contains("skipping"));
}

TEST_CASE("a finetuning run resumed from its checkpoint equals an uninterrupted one",
          "[cli][resume]") {
  const fs::path dir = fresh_dir("resume");
  const fs::path corpus = make_corpus(dir);
  const std::string common =
      "--quick --out '" + (dir / "out").string() + "' --corpus '" + corpus.string() + "' ";
  REQUIRE(run(common + "pretrain", dir).status == 0);
  const Run full = run(common + "finetune", dir);
  INFO(full.output);
  REQUIRE(full.status == 0);
  const std::string uninterrupted = read_file(dir / "out" / "mbok-k1.mbok");
  const std::string summary_full = read_file(dir / "out" / "summary.json");
  fs::remove(dir / "out" / "mbok-k1.mbok");

  // Stop after 25 of 60 steps (a checkpoint every 20: the last one is written at the stop),
  // then resume.
  const Run part = run(common + "--stop-after 25 finetune", dir);
  INFO(part.output);
  REQUIRE(part.status == 0);
  CHECK_THAT(part.output, mbok::test::contains("continue with --resume"));
  REQUIRE_FALSE(fs::exists(dir / "out" / "mbok-k1.mbok"));
  const Run rest = run(common + "--resume finetune", dir);
  INFO(rest.output);
  REQUIRE(rest.status == 0);
  CHECK_THAT(rest.output, mbok::test::contains("resuming at step 25"));
  const std::string resumed = read_file(dir / "out" / "mbok-k1.mbok");
  REQUIRE(!resumed.empty());
  CHECK(resumed == uninterrupted);  // bit-identical weights, scales and metadata
  // Same loss curves too.
  const auto a = nlohmann::json::parse(summary_full)["runs"]["mbok-k1"]["curve"];
  const auto b =
      nlohmann::json::parse(read_file(dir / "out" / "summary.json"))["runs"]["mbok-k1"]["curve"];
  CHECK(a == b);
}

TEST_CASE("bad input gives one clear error line and a non-zero exit", "[cli][errors]") {
  const fs::path dir = fresh_dir("errors");
  const std::string out = " --out '" + (dir / "out").string() + "' ";

  const Run missing = run("--quick" + out + "--corpus /nonexistent/corpus.txt", dir);
  CHECK(missing.status != 0);
  CHECK_THAT(missing.output, mbok::test::contains("/nonexistent/corpus.txt"));

  std::ofstream(dir / "empty.txt").flush();
  const Run empty = run("--quick" + out + "--corpus '" + (dir / "empty.txt").string() + "'", dir);
  CHECK(empty.status != 0);
  CHECK_THAT(empty.output, mbok::test::contains("is empty"));

  std::ofstream(dir / "short.txt") << "In the beginning God created the heaven and the earth.\n";
  const Run short_corpus =
      run("--quick" + out + "--corpus '" + (dir / "short.txt").string() + "'", dir);
  CHECK(short_corpus.status != 0);
  CHECK_THAT(short_corpus.output, mbok::test::contains("too short for a context of 32"));

  const fs::path corpus = make_corpus(dir);
  const std::string common = "--quick" + out + "--corpus '" + corpus.string() + "' ";
  const Run no_teacher = run(common + "evaluate", dir);
  CHECK(no_teacher.status != 0);
  CHECK_THAT(no_teacher.output, mbok::test::contains("run the 'pretrain' stage first"));

  // --distributed is for the finetune stage only.
  const Run distributed = run(common + "--distributed evaluate", dir);
  CHECK(distributed.status != 0);
  CHECK_THAT(distributed.output,
             mbok::test::contains("--distributed applies to the 'finetune' stage only"));

  // A teacher directory whose config.json is not JSON.
  REQUIRE(run(common + "pretrain", dir).status == 0);
  for (const auto& e : fs::directory_iterator(dir / "out"))
    if (e.path().filename().string().rfind("teacher-", 0) == 0)
      std::ofstream(e.path() / "config.json") << "not a model";
  const Run garbage = run(common + "convert", dir);
  CHECK(garbage.status != 0);
  CHECK_THAT(garbage.output, mbok::test::contains("cannot be read"));
  CHECK_THAT(garbage.output, mbok::test::contains("tiny_transformer: error:"));
}

TEST_CASE("sweep: seeds, the same tuning grid for both methods, ablations, verdicts, reuse",
          "[cli][sweep]") {
  const fs::path dir = fresh_dir("sweep");
  const fs::path corpus = make_corpus(dir);
  const std::string args = "--quick --out '" + (dir / "out").string() + "' --corpus '" +
                           corpus.string() +
                           "' sweep --sweep-seeds 2 --sweep-steps 10 --sweep-kernels 1 "
                           "--sweep-tune-kernels 1 --sweep-etas 0.03 0.1 "
                           "--sweep-latent-lrs 1e-3 3e-3";
  const Run r = run(args, dir);
  INFO(r.output);
  REQUIRE(r.status == 0);
  const auto s = nlohmann::json::parse(read_file(dir / "out" / "summary.json"));
  const auto& sw = s["sweep"];
  CHECK(sw["tuning"]["mbok"].size() == 2);
  CHECK(sw["tuning"]["latent"].size() == 2);
  // Every run has a finite loss; the two seeds of a method saw different batches.
  std::map<std::string, std::vector<double>> losses;
  for (const auto& [tag, run] : sw["runs"].items()) {
    const double loss = run["valid_loss"].get<double>();
    CHECK(std::isfinite(loss));
    losses[run["method"].get<std::string>()].push_back(loss);
  }
  CHECK(losses["mbok"].size() >= 2);
  CHECK(losses["latent"].size() >= 2);
  CHECK(losses["scales"].size() == 2);
  // The latent baseline's sign changes are measured, not reported as zero.
  for (const auto& [tag, run] : sw["runs"].items())
    if (run["method"] == "latent") CHECK(run["hamming_from_start"].get<double>() > 0);
  const std::string md = read_file(dir / "out" / "sweep-10.md");
  CHECK(md.find("Boolean against latent, paired by seed") != std::string::npos);
  CHECK(md.find("distinguishable") != std::string::npos);
  CHECK(md.find("scales only") != std::string::npos);
  REQUIRE(sw["verdicts"].size() == 1);

  // A second invocation reuses every recorded run: no training happens.
  const Run again = run(args, dir);
  INFO(again.output);
  REQUIRE(again.status == 0);
  CHECK(again.output.find("finetune K=1") == std::string::npos);
  CHECK(read_file(dir / "out" / "sweep-10.md") == md);
}

TEST_CASE("--distributed finetunes on 2 ranks as one process does, and resumes across rank counts",
          "[cli][distributed]") {
  const fs::path dir = fresh_dir("distributed");
  const fs::path corpus = make_corpus(dir);
  const std::string mpiexec = TINY_TEST_MPIEXEC;
  // f32 accumulators: the ranks' runs then differ from one process's only in the order of
  // float sums (i8's stochastic rounding would draw another stream per slice).
  auto args = [&](const std::string& out) {
    return "--quick --out '" + (dir / out).string() + "' --corpus '" + corpus.string() +
           "' --kernels 1 --budgets 0 --finetune-steps 30 --checkpoint-every 10 "
           "--accumulator f32 ";
  };
  if (mpiexec.empty()) {  // a build without MPI says so
    const Run r = run(args("one") + "--distributed finetune", dir);
    CHECK(r.status != 0);
    CHECK_THAT(r.output, mbok::test::contains("this build has no MPI"));
    return;
  }
  const std::string two_ranks = "'" + mpiexec + "' -n 2 ";
  // The teacher and the converted K = 1 file, once, in one process; each run its own copy.
  REQUIRE(run(args("one") + "pretrain", dir).status == 0);
  REQUIRE(run(args("one") + "convert", dir).status == 0);
  for (const char* out : {"two", "serial", "resumed"})
    fs::copy(dir / "one", dir / out, fs::copy_options::recursive);

  const Run one = run(args("one") + "finetune", dir);
  INFO(one.output);
  REQUIRE(one.status == 0);
  const Run two = run(args("two") + "--distributed finetune", dir, two_ranks);
  INFO(two.output);
  REQUIRE(two.status == 0);
  // Rank 0 alone prints: one progress summary line per run.
  CHECK(two.output.find("validation loss") == two.output.rfind("validation loss"));
  // Summing each block's signals while the backward runs (the default) or after it: the same
  // steps, so the same file, byte for byte.
  const Run serial = run(args("serial") + "--distributed --no-overlap finetune", dir, two_ranks);
  INFO(serial.output);
  REQUIRE(serial.status == 0);
  CHECK(read_file(dir / "serial" / "mbok-k1.mbok") == read_file(dir / "two" / "mbok-k1.mbok"));
  // Stopped after 10 steps on 2 ranks (a sharded checkpoint), resumed on 3 ranks (uneven
  // shares of the batch, 3 new shards) and stopped after 8 more, then resumed in one process
  // (which replaces the shards with one file).
  const fs::path ckpt = dir / "resumed" / "ckpt-mbok-k1.safetensors";
  const Run part = run(args("resumed") + "--distributed --stop-after 10 finetune", dir, two_ranks);
  INFO(part.output);
  REQUIRE(part.status == 0);
  REQUIRE_FALSE(fs::exists(dir / "resumed" / "mbok-k1.mbok"));
  CHECK(shard_files(ckpt) == std::vector<std::string>{"0-of-2", "1-of-2"});
  const Run more = run(args("resumed") + "--distributed --resume --stop-after 8 finetune", dir,
                       "'" + mpiexec + "' -n 3 ");
  INFO(more.output);
  REQUIRE(more.status == 0);
  CHECK_THAT(more.output, mbok::test::contains("resuming at step 10"));
  CHECK(shard_files(ckpt) == std::vector<std::string>{"0-of-3", "1-of-3", "2-of-3"});
  const Run rest = run(args("resumed") + "--resume finetune", dir);
  INFO(rest.output);
  REQUIRE(rest.status == 0);
  CHECK_THAT(rest.output, mbok::test::contains("resuming at step 18"));
  CHECK(shard_files(ckpt).empty());

  auto run_of = [&](const std::string& out) {
    return nlohmann::json::parse(read_file(dir / out / "summary.json"))["runs"]["mbok-k1"];
  };
  const auto a = run_of("one"), b = run_of("two"), c = run_of("resumed");
  CHECK(b["ranks"] == 2);
  const double start =
      nlohmann::json::parse(read_file(dir / "one" / "summary.json"))["ptq"]["k1"]["valid_loss"]
          .get<double>();
  const double la = a["valid_loss"].get<double>(), lb = b["valid_loss"].get<double>(),
               lc = c["valid_loss"].get<double>();
  INFO("validation loss: PTQ " << start << ", one process " << la << ", 2 ranks " << lb
                               << ", 2 ranks resumed in one process " << lc);
  // The runs trained (finetuning moves the loss by percents), and agree to a relative 1e-4:
  // far above float-sum rounding, far below what training changes.
  REQUIRE(start - la > 0.01 * start);
  CHECK(std::abs(lb - la) <= 1e-4 * la);
  CHECK(std::abs(lc - la) <= 1e-4 * la);
  CHECK(fs::exists(dir / "two" / "mbok-k1.mbok"));
}

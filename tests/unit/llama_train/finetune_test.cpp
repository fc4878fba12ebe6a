// The trainable LLaMA against the inference model (same logits and hidden states), its
// exports (mbok file, HF directory, in memory), distillation of a K = 1 student, and
// bit-identical resume from a checkpoint.

#include <catch.hpp>

#include <mbok/io/checkpoint.hpp>
#include <mbok/llama/hf_model.hpp>

#include <filesystem>
#include <random>

#include "train_support.hpp"

using namespace mbok;
using namespace mbok::llama::train;
using llama::RowMatrix;

namespace {

std::string temp_path(const std::string& name) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mbok_llama_train_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

RowMatrix inference_logits(const llama::LlamaModel& m, const std::vector<std::int32_t>& tokens,
                           std::size_t len, std::vector<RowMatrix>* hidden = nullptr) {
  const std::size_t seqs = tokens.size() / len;
  RowMatrix out(static_cast<Eigen::Index>(tokens.size()),
                static_cast<Eigen::Index>(m.config().vocab_size));
  if (hidden)
    hidden->assign(m.blocks().size(),
                   RowMatrix(out.rows(), static_cast<Eigen::Index>(m.config().hidden_size)));
  auto cache = m.make_cache(static_cast<std::int64_t>(len));
  for (std::size_t b = 0; b < seqs; ++b) {
    cache.clear();
    std::vector<RowMatrix> hs;
    const std::vector<std::int32_t> seq(tokens.begin() + std::ptrdiff_t(b * len),
                                        tokens.begin() + std::ptrdiff_t((b + 1) * len));
    out.middleRows(Eigen::Index(b * len), Eigen::Index(len)) =
        m.forward(seq, cache, hidden ? &hs : nullptr);
    if (hidden)
      for (std::size_t l = 0; l < hs.size() - 1; ++l)
        (*hidden)[l].middleRows(Eigen::Index(b * len), Eigen::Index(len)) = hs[l + 1];
  }
  return out;
}

double rel(const RowMatrix& a, const RowMatrix& b) {
  return (a - b).norm() / std::max(1e-30f, b.norm());
}

}  // namespace

TEST_CASE("llama train: forward equals LlamaModel's (dense and Boolean), exports round-trip",
          "[llama_train]") {
  auto c = test::tiny_train_config();
  c.mlp_bias = true;
  const auto teacher = test::random_model(c, 7);
  const auto tokens = test::random_tokens(3 * 9, c.vocab_size, 8);
  std::vector<RowMatrix> ref_hidden, hidden;
  const RowMatrix ref = inference_logits(teacher, tokens, 9, &ref_hidden);

  TrainableLlama<float> dense(teacher, dense_projections<float>());
  RowMatrix logits;
  dense.forward(tokens, 3, 9, logits, false, &hidden);
  CHECK(rel(logits, ref) < 1e-5);
  for (std::size_t l = 0; l < hidden.size(); ++l) CHECK(rel(hidden[l], ref_hidden[l]) < 1e-5);
  // The teacher's outputs both ways (the Finetuner's dense copy, and LlamaModel per sequence).
  const TeacherOutputs t1 = teacher_forward(teacher, tokens, 3, 9, true);
  const TeacherOutputs t2 = teacher_forward(dense, tokens, 3, 9, true);
  CHECK(rel(t2.logits, t1.logits) < 1e-5);
  REQUIRE(t1.hidden.size() == t2.hidden.size());
  for (std::size_t l = 0; l < t1.hidden.size(); ++l) CHECK(rel(t2.hidden[l], t1.hidden[l]) < 1e-5);

  // The dense model as an HF directory, read back.
  const std::string dir = temp_path("hf");
  dense.write_hf(dir);
  const auto ckpt = llama::open_llama_checkpoint(dir);
  const auto back = llama::LlamaModel::from_tensors(
      ckpt.config, [&](const std::string& n) { return ckpt.checkpoint.find(n); });
  CHECK(rel(inference_logits(back, tokens, 9), ref) < 1e-6);

  // A K = 2 Boolean student: in memory and through an mbok file, the same logits.
  TrainableLlama<float> student(teacher, boolean_projections<float>(2));
  RowMatrix s_logits;
  student.forward(tokens, 3, 9, s_logits, false);
  CHECK(rel(s_logits, ref) > 1e-3);  // it is an approximation
  CHECK(rel(inference_logits(student.to_llama_model(), tokens, 9), s_logits) < 1e-5);
  const std::string file = temp_path("student.mbok");
  student.write_mbok(file, std::string("{\"tok\": 1}"));
  const MbokModel mf = MbokModel::open(file);
  CHECK(mf.file().metadata().at("tokenizer.json") == "{\"tok\": 1}");
  CHECK(mf.has_layer("model.layers.1.mlp.down_proj"));
  const auto loaded = llama::LlamaModel::from_mbok(mf);
  CHECK(rel(inference_logits(loaded, tokens, 9), s_logits) < 1e-5);
  // A converted model becomes a trainable one with its layers as they are (K = 2 kept).
  TrainableLlama<float> again(loaded, boolean_projections<float>(0));
  CHECK(dynamic_cast<BooleanProjection<float>&>(again.projection(0, 0)).layer().num_kernels() == 2);
  RowMatrix a_logits;
  again.forward(tokens, 3, 9, a_logits, false);
  CHECK(rel(a_logits, s_logits) < 1e-6);
  std::filesystem::remove_all(std::filesystem::path(file).parent_path());
}

namespace {

struct Run {
  llama::LlamaModel teacher;
  TrainableLlama<float> student;
  std::vector<std::int32_t> stream;
};

Run make_run() {
  auto c = test::tiny_train_config();
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.head_dim = 8;
  c.vocab_size = 40;
  auto teacher = test::random_model(c, 11, 0.25f);
  BooleanLinearOptions bo;
  TrainableLlama<float> student(teacher, boolean_projections<float>(1, bo));
  return Run{std::move(teacher), std::move(student), test::random_tokens(4000, c.vocab_size, 12)};
}

FinetuneOptions options(long steps, AccumulatorType acc) {
  FinetuneOptions o;
  o.steps = steps;
  o.boolean.accumulator = acc;
  o.boolean.learning_rate = 0.1;
  o.adamw.learning_rate = 3e-3;
  return o;
}

}  // namespace

TEST_CASE("llama train: distilling a K = 1 student lowers its KL to the teacher", "[llama_train]") {
  for (AccumulatorType acc : {AccumulatorType::i8, AccumulatorType::f16}) {
    Run r = make_run();
    Finetuner ft(r.teacher, r.student, options(50, acc));
    const auto eval = sample_windows(r.stream, 4, 16, 99, 0);
    const double before = ft.evaluate(eval, 4, 16).kl;
    std::size_t flips = 0;
    for (int s = 0; s < 50; ++s)
      flips += ft.step(sample_windows(r.stream, 4, 16, 1, std::uint64_t(s)), 4, 16).flips;
    const double after = ft.evaluate(eval, 4, 16).kl;
    INFO(accumulator_name(acc) << ": KL " << before << " -> " << after << ", " << flips
                               << " flips of " << ft.boolean_weights());
    CHECK(after < 0.8 * before);
    CHECK(flips > 0);
  }
}

TEST_CASE("llama train: a resumed run continues bit-identically", "[llama_train]") {
  const AccumulatorType acc = AccumulatorType::i8;
  auto batch = [](const Run& r, long s) {
    return sample_windows(r.stream, 2, 12, 3, std::uint64_t(s));
  };
  // Uninterrupted: 8 steps.
  Run a = make_run();
  Finetuner fa(a.teacher, a.student, options(8, acc));
  std::vector<double> losses_a;
  for (long s = 0; s < 8; ++s) losses_a.push_back(fa.step(batch(a, s), 2, 12).loss.total());
  // Interrupted after 4 steps: a checkpoint file, then fresh objects resume from it.
  const std::string path = temp_path("resume.ckpt");
  {
    Run b = make_run();
    Finetuner fb(b.teacher, b.student, options(8, acc));
    for (long s = 0; s < 4; ++s) fb.step(batch(b, s), 2, 12);
    StateDict dict;
    b.student.export_state(dict, "student.");
    fb.export_state(dict, "opt.");
    save_checkpoint(path, dict, {{"note", "test"}});
  }
  Run c = make_run();
  Finetuner fc(c.teacher, c.student, options(8, acc));
  const Checkpoint ck = load_checkpoint(path);
  c.student.import_state(ck.state, "student.");
  fc.import_state(ck.state, "opt.");
  CHECK(fc.step_count() == 4);
  std::vector<double> losses_c;
  for (long s = 4; s < 8; ++s) losses_c.push_back(fc.step(batch(c, s), 2, 12).loss.total());
  for (std::size_t i = 0; i < 4; ++i) CHECK(losses_c[i] == losses_a[4 + i]);
  StateDict da, dc;
  a.student.export_state(da);
  c.student.export_state(dc);
  REQUIRE(da.size() == dc.size());
  for (const auto& [name, t] : da) {
    INFO(name);
    CHECK(t.bytes == dc.at(name).bytes);
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

namespace {

// Records what the backward reports and copies each reported parameter's signal at that
// moment: equal to the signal after the backward only if it was final when reported.
struct RecordingListener : BackwardListener {
  std::vector<BooleanParameter> params;
  std::vector<std::pair<std::size_t, std::size_t>> reports;
  std::vector<std::vector<float>> at_report;  // by parameter
  std::size_t between = 0;
  static std::vector<float> signal_of(const BooleanParameter& p) {
    std::vector<float> s;
    for (std::size_t r = 0; r < p.bits->rows(); ++r)
      s.insert(s.end(), p.signal + r * p.signal_ld, p.signal + r * p.signal_ld + p.bits->cols());
    return s;
  }
  void signals_final(std::size_t first, std::size_t count) override {
    reports.emplace_back(first, count);
    for (std::size_t t = first; t < first + count; ++t) at_report[t] = signal_of(params[t]);
  }
  void between_products() override { ++between; }
};

}  // namespace

TEST_CASE("llama train: the backward reports each block's signals once they are final",
          "[llama_train]") {
  auto c = test::tiny_train_config();
  c.num_hidden_layers = 3;
  const auto teacher = test::random_model(c, 21);
  TrainableLlama<float> student(teacher, boolean_projections<float>(2));
  const auto tokens = test::random_tokens(2 * 7, c.vocab_size, 22);
  RowMatrix logits;
  student.zero_grad();
  student.forward(tokens, 2, 7, logits, true);
  std::mt19937 rng(23);
  std::normal_distribution<float> n01;
  RowMatrix dlogits(logits.rows(), logits.cols());
  for (Eigen::Index i = 0; i < dlogits.size(); ++i) dlogits.data()[i] = n01(rng);

  RecordingListener rec;
  rec.params = student.boolean_parameters();
  rec.at_report.resize(rec.params.size());
  const auto offsets = student.boolean_parameter_offsets();
  REQUIRE(offsets.size() == 4);
  CHECK(offsets.back() == rec.params.size());
  CHECK(offsets[1] >= 7);  // at least one trainable kernel in each of seven projections
  CHECK(offsets[2] - offsets[1] == offsets[1]);  // blocks of the same shape
  student.backward(dlogits, nullptr, &rec);

  // One report per block, last block first, together every parameter once.
  REQUIRE(rec.reports.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const std::size_t l = 2 - i;
    CHECK(rec.reports[i].first == offsets[l]);
    CHECK(rec.reports[i].second == offsets[l + 1] - offsets[l]);
  }
  CHECK(rec.between > 0);
  for (std::size_t t = 0; t < rec.params.size(); ++t) {
    INFO(rec.params[t].name);
    const auto now = RecordingListener::signal_of(rec.params[t]);
    CHECK(rec.at_report[t] == now);
    bool any = false;
    for (float v : now) any = any || v != 0;
    CHECK(any);  // the backward wrote it
  }
}

// Exact gradients of the trainable LLaMA: each operation and whole tiny models (dense, tied,
// with biases, sliding window, Boolean scales and signals) against central finite
// differences in double.

#include <catch.hpp>

#include "train_support.hpp"

using namespace mbok;
using namespace mbok::llama::train;
using Mat = RowMatrixT<double>;
using Vec = VectorT<double>;

namespace {

Mat random_mat(Eigen::Index r, Eigen::Index c, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0.0, 1.0);
  Mat m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

// Checks d(sum(out (.) R))/d(in) of a map in -> out given its backward.
double check_map(Mat& in, const std::function<Mat(const Mat&)>& f, const Mat& analytic_din,
                 const Mat& R) {
  double err = 0;
  const double h = 1e-6;
  for (Eigen::Index i = 0; i < in.size(); ++i) {
    const double old = in.data()[i];
    in.data()[i] = old + h;
    const double up = (f(in).array() * R.array()).sum();
    in.data()[i] = old - h;
    const double down = (f(in).array() * R.array()).sum();
    in.data()[i] = old;
    const double numeric = (up - down) / (2 * h);
    err = std::max(err,
                   std::abs(numeric - analytic_din.data()[i]) / std::max(1.0, std::abs(numeric)));
  }
  return err;
}

}  // namespace

TEST_CASE("llama train: RMSNorm backward matches finite differences", "[llama_train]") {
  Mat x = random_mat(5, 7, 1);
  Vec w = random_mat(7, 1, 2).col(0);
  const Mat R = random_mat(5, 7, 3);
  Mat y, dx;
  Vec r, dw = Vec::Zero(7);
  rms_norm_forward(x, w, 1e-5, y, r);
  rms_norm_backward(x, w, r, R, dx, &dw);
  auto f = [&](const Mat& in) {
    Mat o;
    Vec rr;
    rms_norm_forward(in, w, 1e-5, o, rr);
    return o;
  };
  CHECK(check_map(x, f, dx, R) < 1e-7);
  // The weight's gradient.
  Mat wm = w.transpose();
  auto fw = [&](const Mat& wrow) {
    Mat o;
    Vec rr;
    rms_norm_forward(x, Vec(wrow.transpose()), 1e-5, o, rr);
    return o;
  };
  CHECK(check_map(wm, fw, Mat(dw.transpose()), R) < 1e-7);
}

TEST_CASE("llama train: RoPE backward is the inverse rotation", "[llama_train]") {
  auto c = test::tiny_train_config();
  const std::size_t len = 5, heads = 3, d = 6;
  const Mat cs = rope_table<double>(c, len);
  Mat x = random_mat(2 * len, heads * d, 4);
  const Mat R = random_mat(2 * len, heads * d, 5);
  Mat dx = R;
  rope_apply(dx, heads, d, len, cs, true);
  auto f = [&](const Mat& in) {
    Mat o = in;
    rope_apply(o, heads, d, len, cs, false);
    return o;
  };
  CHECK(check_map(x, f, dx, R) < 1e-8);
}

TEST_CASE("llama train: GQA causal attention backward, full and sliding window", "[llama_train]") {
  for (std::size_t window : {std::size_t(0), std::size_t(3)}) {
    TrainAttentionShape s{4, 2, 4, window, 2, 5};
    Mat q = random_mat(10, 16, 6), k = random_mat(10, 8, 7), v = random_mat(10, 8, 8);
    const Mat R = random_mat(10, 16, 9);
    CausalAttention<double> att;
    Mat out, dq, dk, dv;
    att.forward(s, q, k, v, out, true);
    att.backward(q, k, v, R, dq, dk, dv);
    auto fq = [&](const Mat& in) {
      CausalAttention<double> a;
      Mat o;
      a.forward(s, in, k, v, o, false);
      return o;
    };
    auto fk = [&](const Mat& in) {
      CausalAttention<double> a;
      Mat o;
      a.forward(s, q, in, v, o, false);
      return o;
    };
    auto fv = [&](const Mat& in) {
      CausalAttention<double> a;
      Mat o;
      a.forward(s, q, k, in, o, false);
      return o;
    };
    CHECK(check_map(q, fq, dq, R) < 1e-7);
    CHECK(check_map(k, fk, dk, R) < 1e-7);
    CHECK(check_map(v, fv, dv, R) < 1e-7);
    // Causality: the first token's output ignores later keys.
    Mat k2 = k;
    k2.row(4).setConstant(3.0);
    Mat o2;
    CausalAttention<double> a2;
    a2.forward(s, q, k2, v, o2, false);
    CHECK((o2.row(0) - out.row(0)).norm() < 1e-12);
  }
}

TEST_CASE("llama train: SwiGLU backward", "[llama_train]") {
  Mat g = random_mat(4, 6, 10), u = random_mat(4, 6, 11);
  const Mat R = random_mat(4, 6, 12);
  Mat a, dg, du;
  swiglu_forward(g, u, a);
  swiglu_backward(g, u, R, dg, du);
  auto fg = [&](const Mat& in) {
    Mat o;
    swiglu_forward(in, u, o);
    return o;
  };
  auto fu = [&](const Mat& in) {
    Mat o;
    swiglu_forward(g, in, o);
    return o;
  };
  CHECK(check_map(g, fg, dg, R) < 1e-8);
  CHECK(check_map(u, fu, du, R) < 1e-8);
}

namespace {

// Loss = sum(logits (.) R) + sum_l sum(hidden_l (.) H_l): its gradients are R and H_l.
double model_gradient_error(const test::LlamaConfig& c, TrainableLlama<double>& m, std::size_t seqs,
                            std::size_t len, std::string* worst) {
  const auto tokens = test::random_tokens(seqs * len, c.vocab_size, 3);
  const auto rows = static_cast<Eigen::Index>(seqs * len);
  const Mat R = random_mat(rows, c.vocab_size, 20);
  std::vector<Mat> H;
  for (std::size_t l = 0; l < m.num_blocks(); ++l)
    H.push_back(random_mat(rows, c.hidden_size, 30 + l));
  Mat logits;
  std::vector<Mat> hidden;
  m.zero_grad();
  m.forward(tokens, seqs, len, logits, true, &hidden);
  m.backward(R, &H);
  auto loss = [&]() {
    Mat lg;
    std::vector<Mat> hs;
    m.forward(tokens, seqs, len, lg, false, &hs);
    double total = (lg.array() * R.array()).sum();
    for (std::size_t l = 0; l < hs.size(); ++l) total += (hs[l].array() * H[l].array()).sum();
    return total;
  };
  auto params = m.parameters();
  return test::max_gradient_error(params, loss, 5, 1e-5, worst);
}

}  // namespace

TEST_CASE("llama train: whole dense model gradients (untied, tied, biases, window)",
          "[llama_train]") {
  for (int variant = 0; variant < 3; ++variant) {
    auto c = test::tiny_train_config();
    if (variant == 1) {
      c.tie_word_embeddings = true;
      c.attention_bias = true;
      c.mlp_bias = true;
    }
    if (variant == 2) {
      c.sliding_window = 3;
      c.num_key_value_heads = 4;
    }
    const auto teacher = test::random_model(c, 40 + variant);
    TrainableLlama<double> m(teacher, dense_projections<double>(),
                             TrainableParts{true, true, true});
    std::string worst;
    const double err = model_gradient_error(c, m, 2, 5, &worst);
    INFO("variant " << variant << " worst " << worst);
    CHECK(err < 1e-6);
  }
}

TEST_CASE("llama train: Boolean model gradients of scales and the signal Q", "[llama_train]") {
  auto c = test::tiny_train_config();
  c.attention_bias = true;
  const auto teacher = test::random_model(c, 50);
  BooleanLinearOptions bo;
  bo.trainable_kernels = {-1};
  TrainableLlama<double> m(teacher, boolean_projections<double>(2, bo),
                           TrainableParts{true, false, false});
  std::string worst;
  const double err = model_gradient_error(c, m, 2, 4, &worst);
  INFO(worst);
  CHECK(err < 1e-6);
  // Q_k = dL/dW (.) s_out s_in^T, with dL/dW from a dense model of the same weights.
  TrainableLlama<double> dense(teacher, boolean_projections<double>(2, bo), TrainableParts{});
  // Replace each Boolean projection by its reconstruction as a dense layer.
  for (std::size_t l = 0; l < dense.num_blocks(); ++l)
    for (std::size_t j = 0; j < 7; ++j) {
      auto& p = dense.projection(l, j);
      dense.set_projection(
          l, j, std::make_unique<DenseProjection<double>>(p.dense_weight(), p.bias_vector()));
    }
  model_gradient_error(c, dense, 2, 4, nullptr);
  double worst_q = 0;
  for (std::size_t l = 0; l < m.num_blocks(); ++l)
    for (std::size_t j = 0; j < 7; ++j) {
      auto& bl = dynamic_cast<BooleanProjection<double>&>(m.projection(l, j)).layer();
      const Mat& gw = dynamic_cast<DenseProjection<double>&>(dense.projection(l, j)).weight_grad();
      const std::size_t k = bl.num_kernels() - 1;
      const Mat expected = gw.array() * (bl.s_out(k) * bl.s_in(k).transpose()).array();
      worst_q = std::max(worst_q, (bl.signal(k) - expected).cwiseAbs().maxCoeff() /
                                      std::max(1.0, expected.cwiseAbs().maxCoeff()));
    }
  CHECK(worst_q < 1e-9);
}

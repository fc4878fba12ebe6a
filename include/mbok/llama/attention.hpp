#pragma once
/// \file
/// Causal grouped-query softmax attention over a `KvCache`: query i (absolute position
/// p = pos0 + i) of head h attends to the keys and values of kv head g = h / (heads /
/// kv_heads) at positions [lo, p], lo = max(0, p - sliding_window + 1) with a sliding window,
/// else 0, with scores q.k / sqrt(head_dim) and a float softmax (max subtracted).
///
/// The heads of one kv head are computed together (G = heads / kv_heads query heads: one pass
/// over the cached rows for a decode step, G x L products for a prefill), so each cached key
/// and value row is read once per kv head and token; a decode step allocates nothing. The
/// (kv head, token) units run on the default `parallel_for`, split by their cost.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../parallel.hpp"
#include "kv_cache.hpp"

namespace mbok {
namespace llama {

/// Shape of the attention of one model.
struct AttentionShape {
  std::size_t heads = 0, kv_heads = 0, head_dim = 0;
  std::size_t sliding_window = 0;  ///< 0: full causal attention
};

/// out (t rows of heads * head_dim floats, `ldo` apart) = attention of the queries q (t rows,
/// `ldq` apart, rotated) at positions pos0.. over `cache`'s layer `layer`, whose rows
/// [0, pos0 + t) must hold the rotated keys and the values. `scores` holds per-chunk scratch
/// (grown as needed).
inline void causal_attention(const AttentionShape& s, const float* q, std::size_t ldq,
                             std::size_t t, std::size_t pos0, const KvCache& cache,
                             std::size_t layer, float* out, std::size_t ldo,
                             std::vector<std::vector<float>>& scores) {
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CMap = Eigen::Map<const RowMatrix>;
  using Map = Eigen::Map<RowMatrix>;
  if (t == 0) return;
  const std::size_t group = s.heads / s.kv_heads, d = s.head_dim;
  const std::size_t units = s.kv_heads * t;
  const std::size_t longest =
      s.sliding_window > 0 ? std::min(pos0 + t, s.sliding_window) : pos0 + t;
  const std::size_t cost = 4 * group * d * longest + 1;
  const std::size_t grain = mbok::detail::grain_for_cost(cost);
  const std::size_t chunks = parallel_chunk_count(0, units, grain);
  if (scores.size() < chunks) scores.resize(chunks);
  // Sized for the longest context the cache allows, so growing contexts reallocate nothing.
  const auto capacity = static_cast<std::size_t>(cache.max_tokens());
  const std::size_t room =
      group * (s.sliding_window > 0 ? std::min(capacity, s.sliding_window) : capacity);
  for (std::size_t c = 0; c < chunks; ++c)
    if (scores[c].size() < std::max(room, group * longest))
      scores[c].resize(std::max(room, group * longest));
  const float scale = static_cast<float>(1.0 / std::sqrt(double(d)));
  parallel_for(0, units, grain, [&](std::size_t u0, std::size_t u1, std::size_t chunk) {
    float* sc = scores[chunk].data();
    for (std::size_t u = u0; u < u1; ++u) {
      // Units run token-major within a kv head: neighbouring units share the kv head's rows.
      const std::size_t g = u / t, i = u % t;
      const std::size_t p = pos0 + i;
      const std::size_t lo =
          s.sliding_window > 0 && p + 1 > s.sliding_window ? p + 1 - s.sliding_window : 0;
      const auto len = static_cast<Eigen::Index>(p + 1 - lo);
      const auto gi = static_cast<Eigen::Index>(group), di = static_cast<Eigen::Index>(d);
      const CMap qg(q + i * ldq + g * group * d, gi, di);
      const CMap k(cache.keys(layer, g) + lo * d, len, di);
      const CMap v(cache.values(layer, g) + lo * d, len, di);
      Map sm(sc, gi, len);
      if (t == 1) {
        // Decode: one pass over the kv head's keys, each row used by the G heads while in
        // registers (and no allocation, unlike Eigen's GEMM).
        for (Eigen::Index j = 0; j < len; ++j)
          for (Eigen::Index r = 0; r < gi; ++r) sm(r, j) = qg.row(r).dot(k.row(j)) * scale;
      } else {
        sm.noalias() = qg * k.transpose();
        sm *= scale;
      }
      for (Eigen::Index r = 0; r < gi; ++r) {
        const float mx = sm.row(r).maxCoeff();
        float sum = 0.0f;
        for (Eigen::Index j = 0; j < len; ++j) {
          const float e = std::exp(sm(r, j) - mx);
          sm(r, j) = e;
          sum += e;
        }
        sm.row(r) *= 1.0f / sum;
      }
      Map og(out + i * ldo + g * group * d, gi, di);
      if (t == 1) {
        og.setZero();
        for (Eigen::Index j = 0; j < len; ++j)
          for (Eigen::Index r = 0; r < gi; ++r) og.row(r) += sm(r, j) * v.row(j);
      } else {
        og.noalias() = sm * v;
      }
    }
  });
}

}  // namespace llama
}  // namespace mbok

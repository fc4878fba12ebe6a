#pragma once
#include "../../guard.hpp"

// neon: Boolean weights x float activations: table entries sign_gemm_f32, sign_gemm_acc_f32
// and sign_gemm_t_f32.
//
// A weight bit is the sign bit of its +-1 value, so x * w is x with its sign bit XORed with
// the weight bit: 16 bits of a row become four 4-lane masks (broadcast, shift each lane's bit
// up to bit 31 with USHL, keep bit 31), and the products cost one EOR each, with no multiply.
// Activations are read up to column n only: the last partial group of 16 goes through a
// zero-padded copy (weight padding bits are zero, so the copy's zeros add nothing).

#include <arm_neon.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::neon {

// Sign masks of 16 consecutive weights starting at bit `shift` of `word`: lane l of m[k] is
// bit 4k + l of the group, moved to bit 31.
struct SignMasks16 {
  uint32x4_t m[4];
};

inline SignMasks16 sign_masks16(std::uint64_t word, unsigned shift) noexcept {
  static constexpr std::int32_t kShifts[4][4] = {
      {31, 30, 29, 28}, {27, 26, 25, 24}, {23, 22, 21, 20}, {19, 18, 17, 16}};
  const uint32x4_t bits = vdupq_n_u32(static_cast<std::uint32_t>((word >> shift) & 0xFFFFu));
  const uint32x4_t sign = vdupq_n_u32(0x80000000u);
  SignMasks16 s;
  for (int k = 0; k < 4; ++k) s.m[k] = vandq_u32(vshlq_u32(bits, vld1q_s32(kShifts[k])), sign);
  return s;
}

// acc += (x with its signs flipped where the masks are set), 16 floats.
inline float32x4_t signed_add16(float32x4_t acc, const float* x, const SignMasks16& s) noexcept {
  for (int k = 0; k < 4; ++k) {
    const uint32x4_t xv = vreinterpretq_u32_f32(vld1q_f32(x + 4 * k));
    acc = vaddq_f32(acc, vreinterpretq_f32_u32(veorq_u32(xv, s.m[k])));
  }
  return acc;
}

// One tile of the forward product: TI tokens x TJ weight rows. `xt` holds each token's last
// partial group of 16, zero-padded (unused when n is a multiple of 16). Results go to
// out(i, j): a store, or an accumulation scaled by s_out (sign_gemm_acc_f32).
template <int TI, int TJ, typename Out>
inline void sign_tile_f32(const float* const* x, const float (*xt)[16], std::size_t n,
                          const std::uint64_t* const* w, Out&& out) noexcept {
  float32x4_t acc[TI][TJ];
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j) acc[i][j] = vdupq_n_f32(0.0f);
  const std::size_t groups = n / 16;
  for (std::size_t g = 0; g < groups; ++g) {
    const std::size_t word = g / 4;
    const auto shift = static_cast<unsigned>((g % 4) * 16);
    for (int j = 0; j < TJ; ++j) {
      const SignMasks16 s = sign_masks16(w[j][word], shift);
      for (int i = 0; i < TI; ++i) acc[i][j] = signed_add16(acc[i][j], x[i] + g * 16, s);
    }
  }
  if (n % 16 != 0) {
    const auto shift = static_cast<unsigned>((groups % 4) * 16);
    for (int j = 0; j < TJ; ++j) {
      const SignMasks16 s = sign_masks16(w[j][groups / 4], shift);
      for (int i = 0; i < TI; ++i) acc[i][j] = signed_add16(acc[i][j], xt[i], s);
    }
  }
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j) out(i, j, vaddvq_f32(acc[i][j]));
}

#include "../generic/tile_loop.hpp"

// The forward product over tokens in tiles of 2 and weight rows [j0, j1) in tiles of 4, with
// no L1 blocking; `store(i, j, dot)` writes one result.
template <typename Store>
inline void sign_gemm_f32_driver(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                                 std::size_t j0, std::size_t j1, Store&& store) noexcept {
  constexpr std::size_t kTileI = 2;
  constexpr std::size_t kTileJ = 4;
  const std::size_t n = w.cols();
  const std::size_t tail = n % 16;
  // The zero-padded last groups of the current token tile, copied once per tile of tokens.
  std::size_t copied = ~std::size_t{0};
  float xt[kTileI][16];
  tile_loop<kTileI, kTileJ>(
      x, ldx, t, w, j0, j1, j1 - j0,
      [&](std::size_t i, std::size_t ti, const float* const* xr, std::size_t j, std::size_t tj,
          const std::uint64_t* const* wr) {
        if (i != copied) {
          copied = i;
          for (std::size_t r = 0; r < kTileI; ++r) {
            std::fill(xt[r], xt[r] + 16, 0.0f);
            if (tail != 0) std::memcpy(xt[r], xr[r] + (n - tail), tail * sizeof(float));
          }
        }
        auto out = [&](int a, int b, float dot) {
          store(i + static_cast<std::size_t>(a), j + static_cast<std::size_t>(b), dot);
        };
        with_tile_size<kTileI>(ti, [&](auto tile_i) {
          with_tile_size<kTileJ>(tj, [&](auto tile_j) {
            sign_tile_f32<decltype(tile_i)::value, decltype(tile_j)::value>(xr, xt, n, wr, out);
          });
        });
      });
}

inline void sign_gemm_f32(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w, float* y,
                          std::size_t ldy, std::size_t j0, std::size_t j1) {
  sign_gemm_f32_driver(x, ldx, t, w, j0, j1,
                       [&](std::size_t i, std::size_t j, float dot) { y[i * ldy + j] = dot; });
}

inline void sign_gemm_acc_f32(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                              const float* s_out, float* y, std::size_t ldy, std::size_t j0,
                              std::size_t j1) {
  sign_gemm_f32_driver(x, ldx, t, w, j0, j1, [&](std::size_t i, std::size_t j, float dot) {
    y[i * ldy + j] += s_out[j] * dot;
  });
}

// One tile of the transposed product: TI tokens x 16 columns starting at `l`, summed over
// every weight row. Results land in out[i][0..16).
template <int TI>
inline void sign_t_tile_f32(const float* z, std::size_t ldz, BitMatrixView w, std::size_t l,
                            float (*out)[16]) noexcept {
  float32x4_t acc[TI][4];
  for (int i = 0; i < TI; ++i)
    for (int k = 0; k < 4; ++k) acc[i][k] = vdupq_n_f32(0.0f);
  const std::size_t word = l / 64;
  const auto shift = static_cast<unsigned>(l % 64);
  for (std::size_t j = 0; j < w.rows(); ++j) {
    const SignMasks16 s = sign_masks16(w.row(j)[word], shift);
    for (int i = 0; i < TI; ++i) {
      const uint32x4_t zv =
          vreinterpretq_u32_f32(vld1q_dup_f32(z + static_cast<std::size_t>(i) * ldz + j));
      for (int k = 0; k < 4; ++k)
        acc[i][k] = vaddq_f32(acc[i][k], vreinterpretq_f32_u32(veorq_u32(zv, s.m[k])));
    }
  }
  for (int i = 0; i < TI; ++i)
    for (int k = 0; k < 4; ++k) vst1q_f32(out[i] + 4 * k, acc[i][k]);
}

inline void sign_gemm_t_f32(const float* z, std::size_t ldz, std::size_t t, BitMatrixView w,
                            float* dx, std::size_t lddx, std::size_t l0, std::size_t l1) {
  constexpr std::size_t kTileI = 4;
  for (std::size_t i = 0; i < t; i += kTileI) {
    const std::size_t ti = std::min(kTileI, t - i);
    const float* zi = z + i * ldz;
    for (std::size_t l = l0; l < l1; l += 16) {
      float out[kTileI][16];
      with_tile_size<kTileI>(
          ti, [&](auto tile_i) { sign_t_tile_f32<decltype(tile_i)::value>(zi, ldz, w, l, out); });
      const std::size_t count = std::min<std::size_t>(16, l1 - l);
      for (std::size_t r = 0; r < ti; ++r)
        std::memcpy(dx + (i + r) * lddx + l, out[r], count * sizeof(float));
    }
  }
}

inline constexpr void install_sign_f32(ProductTable& t) noexcept {
  t.sign_gemm_f32 = &sign_gemm_f32;
  t.sign_gemm_t_f32 = &sign_gemm_t_f32;
  t.sign_gemm_acc_f32 = &sign_gemm_acc_f32;
}

}  // namespace mbok::detail::neon

#include "end.hpp"

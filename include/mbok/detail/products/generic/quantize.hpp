// The per-token quantization entries of one ISA, written once and compiled once per ISA: an
// ISA includes this file inside its namespace and code region, after defining
//
//     std::uint32_t abs_max_bits_f32(x, s, n)
//     template <bool kScaled, bool kPre> std::int32_t quantize_codes_loop(x, s, n, pre, inv, q)
//
// (kScaled: v = x s, else v = x; kPre: v is multiplied by pre before inv, which is skipped
// when pre is 1). No include guard: it defines its contents once per ISA namespace.

inline std::int32_t quantize_codes_f32(const float* x, const float* s, std::size_t n, float pre,
                                       float inv, std::int8_t* q) noexcept {
  if (s != nullptr)
    return pre == 1.0f ? quantize_codes_loop<true, false>(x, s, n, pre, inv, q)
                       : quantize_codes_loop<true, true>(x, s, n, pre, inv, q);
  return pre == 1.0f ? quantize_codes_loop<false, false>(x, s, n, pre, inv, q)
                     : quantize_codes_loop<false, true>(x, s, n, pre, inv, q);
}

inline constexpr void install_quantize(ProductTable& t) noexcept {
  t.abs_max_bits_f32 = &abs_max_bits_f32;
  t.quantize_codes_f32 = &quantize_codes_f32;
}

// libFuzzer target: the mbok model loader over arbitrary bytes. Any input must either be
// rejected with mbok::FormatError or give layers that load and reconstruct. Each input runs
// twice: from a 64-byte aligned copy, where kernels at 64-byte aligned offsets are borrowed
// with no copy (the path a mapped file takes), and from a copy one byte off alignment, where
// every kernel is copied. Both copies are exactly the input's size, so AddressSanitizer sees
// any read past the end. The two runs must agree: the same error message, or the same layers
// with the same padded rows of bits word for word (the padding words of every borrowed row
// zero, as the bit-layout contract requires), scales and reconstructions, byte for byte.
#include <mbok/io/mbok_format.hpp>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace {

struct AlignedFree {
  void operator()(std::uint8_t* p) const noexcept { ::operator delete(p, std::align_val_t(64)); }
};

// What one run saw: the error, or per layer every padded kernel row and the scales and
// reconstruction as bytes.
struct Outcome {
  bool rejected = false;
  std::string error;
  std::vector<std::uint64_t> words;
  std::vector<std::uint8_t> bytes;
  bool operator==(const Outcome& o) const {
    return rejected == o.rejected && error == o.error && words == o.words && bytes == o.bytes;
  }
};

template <typename T>
void append(std::vector<std::uint8_t>& out, const T* p, std::size_t count) {
  const auto* b = reinterpret_cast<const std::uint8_t*>(p);
  out.insert(out.end(), b, b + count * sizeof(T));
}

Outcome run(const std::uint8_t* data, std::size_t size, bool expect_borrowed) {
  Outcome out;
  try {
    const mbok::MbokModel model = mbok::MbokModel::from_memory(data, size);
    for (const mbok::MbokLayerInfo& info : model.layers()) {
      const mbok::MultiKernelWeights<float> w = model.load_weights<float>(info.name);
      if (w.num_kernels() != info.num_kernels || w.out_features() != info.out_features)
        std::abort();
      for (std::size_t k = 0; k < w.num_kernels(); ++k) {
        if (info.packed) {
          // Unpacked into owned bits; the packed form maps back onto the same bits.
          if (w.kernel(k).is_borrowed()) std::abort();
          const mbok::Int8PreparedWeights pw =
              model.load_packed(info.name, mbok::ProductSet(mbok::Isa::scalar));
          if (!(pw.kernel(k).unpack() == w.kernel(k))) std::abort();
        } else {
          const mbok::TensorView& kt =
              model.file().at(mbok::mbok_kernel_name(info.name, k, model.format_version()));
          // Borrowed exactly when the bytes are aligned; never when the buffer is off by one.
          if (w.kernel(k).is_borrowed() !=
              (expect_borrowed && kt.is_aligned(mbok::kBufferAlignment)))
            std::abort();
        }
        // Reads every word of every padded row of the (borrowed) kernel: the padding is zero.
        const mbok::BitMatrixView v = w.kernel(k).view();
        const std::size_t n = info.in_features, row_words = mbok::padded_row_words(n);
        for (std::size_t i = 0; i < v.rows(); ++i) {
          const std::uint64_t* row = v.row(i);
          for (std::size_t word = 0; word < row_words; ++word) {
            const std::size_t first = word * 64;
            const std::uint64_t padding = first >= n        ? ~std::uint64_t{0}
                                          : n - first >= 64 ? 0
                                                            : ~std::uint64_t{0} << (n - first);
            if ((row[word] & padding) != 0) std::abort();
            out.words.push_back(row[word]);
          }
        }
        if (w.kernel(k).popcount() > info.out_features * info.in_features) std::abort();
        append(out.bytes, w.s_out(k).data(), info.out_features);
        append(out.bytes, w.s_in(k).data(), info.in_features);
      }
      // Bounded: every kernel holds at least 64 bytes per row of the input.
      const Eigen::MatrixXf r = w.reconstruct();
      if (r.rows() != static_cast<Eigen::Index>(info.out_features)) std::abort();
      append(out.bytes, r.data(), static_cast<std::size_t>(r.size()));
      (void)model.bias(info.name);
      const mbok::MultiKernelWeights<double> wd = model.load_weights<double>(info.name);
      for (std::size_t k = 0; k < wd.num_kernels(); ++k)
        append(out.bytes, wd.s_out(k).data(), info.out_features);
    }
    (void)model.other_tensors();
  } catch (const mbok::FormatError& e) {
    out.rejected = true;
    out.error = e.what();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Zero-copy path: a 64-byte aligned buffer of exactly `size` bytes.
  std::unique_ptr<std::uint8_t, AlignedFree> aligned(
      static_cast<std::uint8_t*>(::operator new(size > 0 ? size : 1, std::align_val_t(64))));
  if (size > 0) std::memcpy(aligned.get(), data, size);
  const Outcome borrowed = run(aligned.get(), size, true);
  // Copying path: the same bytes one past a 64-byte boundary.
  std::unique_ptr<std::uint8_t, AlignedFree> shifted(
      static_cast<std::uint8_t*>(::operator new(size + 1, std::align_val_t(64))));
  if (size > 0) std::memcpy(shifted.get() + 1, data, size);
  const Outcome copied = run(shifted.get() + 1, size, false);
  // The zero-copy and the copying path read the same model.
  if (!(borrowed == copied)) std::abort();
  return 0;
}

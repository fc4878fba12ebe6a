// libFuzzer target: the mbok model loader over arbitrary bytes. Any input must either be
// rejected with mbok::FormatError or give layers that load and reconstruct. Each input runs
// twice: from a 64-byte aligned copy, where kernels at 64-byte aligned offsets are borrowed
// with no copy (the path a mapped file takes), and from a copy one byte off alignment, where
// every kernel is copied. Both copies are exactly the input's size, so AddressSanitizer sees
// any read past the end.
#include <mbok/io/mbok_format.hpp>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace {

struct AlignedFree {
  void operator()(std::uint8_t* p) const noexcept { ::operator delete(p, std::align_val_t(64)); }
};

void run(const std::uint8_t* data, std::size_t size, bool expect_borrowed) {
  try {
    const mbok::MbokModel model = mbok::MbokModel::from_memory(data, size);
    for (const mbok::MbokLayerInfo& info : model.layers()) {
      const mbok::MultiKernelWeights<float> w = model.load_weights<float>(info.name);
      if (w.num_kernels() != info.num_kernels || w.out_features() != info.out_features)
        std::abort();
      for (std::size_t k = 0; k < w.num_kernels(); ++k) {
        const mbok::TensorView& kt =
            model.file().at(mbok::mbok_kernel_name(info.name, k, model.format_version()));
        // Borrowed exactly when the bytes are aligned; never when the buffer is off by one.
        if (w.kernel(k).is_borrowed() != (expect_borrowed && kt.is_aligned(mbok::kBufferAlignment)))
          std::abort();
        // Reads every word of every padded row of the (borrowed) kernel.
        if (w.kernel(k).popcount() > info.out_features * info.in_features) std::abort();
      }
      // Bounded: every kernel holds at least 64 bytes per row of the input.
      const Eigen::MatrixXf r = w.reconstruct();
      if (r.rows() != static_cast<Eigen::Index>(info.out_features)) std::abort();
      (void)model.bias(info.name);
      (void)model.load_weights<double>(info.name);
    }
    (void)model.other_tensors();
  } catch (const mbok::FormatError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Zero-copy path: a 64-byte aligned buffer of exactly `size` bytes.
  std::unique_ptr<std::uint8_t, AlignedFree> aligned(
      static_cast<std::uint8_t*>(::operator new(size > 0 ? size : 1, std::align_val_t(64))));
  if (size > 0) std::memcpy(aligned.get(), data, size);
  run(aligned.get(), size, true);
  // Copying path: the same bytes one past a 64-byte boundary.
  std::unique_ptr<std::uint8_t, AlignedFree> shifted(
      static_cast<std::uint8_t*>(::operator new(size + 1, std::align_val_t(64))));
  if (size > 0) std::memcpy(shifted.get() + 1, data, size);
  run(shifted.get() + 1, size, false);
  return 0;
}

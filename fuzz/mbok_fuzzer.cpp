// libFuzzer target: the mbok model loader over arbitrary bytes. Any input must either be
// rejected with mbok::FormatError or give layers that load and reconstruct.
#include <mbok/io/mbok_format.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const mbok::MbokModel model = mbok::MbokModel::from_memory(data, size);
    for (const mbok::MbokLayerInfo& info : model.layers()) {
      const mbok::MultiKernelWeights<float> w = model.load_weights<float>(info.name);
      if (w.num_kernels() != info.num_kernels || w.out_features() != info.out_features) std::abort();
      // Bounded: every kernel holds at least 64 bytes per row of the input.
      const Eigen::MatrixXf r = w.reconstruct();
      if (r.rows() != static_cast<Eigen::Index>(info.out_features)) std::abort();
      (void)model.bias(info.name);
      (void)model.load_weights<double>(info.name);
    }
    (void)model.other_tensors();
  } catch (const mbok::FormatError&) {
  }
  return 0;
}

// libFuzzer target: the safetensors reader over arbitrary bytes. Any input must either be
// rejected with mbok::FormatError or read completely; what is read must survive a round trip
// through the writer unchanged.
#include <mbok/io/safetensors.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mbok::StateDict dict;
  mbok::Metadata metadata;
  try {
    const mbok::SafetensorsFile f = mbok::SafetensorsFile::from_memory(data, size);
    double sum = 0;
    for (const mbok::TensorView& t : f.tensors()) {
      const std::vector<double> v = t.to_vector<double>();  // touches every byte of every tensor
      for (double x : v) sum += x == x ? 0.0 : 1.0;
      if (t.shape.size() == 2 || t.shape.size() == 1) (void)t.to_matrix();
    }
    (void)sum;
    dict = f.to_state_dict();
    metadata = f.metadata();
  } catch (const mbok::FormatError&) {
    return 0;
  }
  // Accepted input: write it back and read it again.
  mbok::SafetensorsWriter writer;
  writer.add(dict);
  writer.set_metadata(metadata);
  const std::vector<std::uint8_t> bytes = writer.to_bytes();
  const mbok::SafetensorsFile again = mbok::SafetensorsFile::from_memory(bytes.data(), bytes.size());
  if (again.metadata() != metadata || again.to_state_dict().size() != dict.size()) std::abort();
  for (const auto& [name, t] : dict) {
    const mbok::TensorView& u = again.at(name);
    if (u.dtype != t.dtype || u.shape != t.shape || u.to_tensor().bytes != t.bytes) std::abort();
  }
  return 0;
}

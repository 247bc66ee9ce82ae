// libFuzzer harness: a safetensors file (8-byte header length, JSON header, data) read by
// SafetensorsFile::open, then every tensor it lists viewed over the mapping, which must lie inside it.
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "model/safetensors.h"
#include "qwenvl/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  fuzz::MemoryFile file(data, size);
  std::shared_ptr<const model::SafetensorsFile> st;
  try {
    st = model::SafetensorsFile::open(file.path());
  } catch (const Error& e) {
    fuzz::require_names_file(e.what(), file.path());
    return 0;
  }
  for (const model::TensorEntry& entry : st->tensors()) {
    fuzz::require(st->find(entry.name) == &entry, "find() misses tensor " + entry.name);
    fuzz::require(st->data_begin() + entry.end <= st->data_end(), "tensor " + entry.name + " ends past the file");
    const at::Tensor t = st->tensor(entry);
    fuzz::require(t.nbytes() == entry.nbytes(), "tensor " + entry.name + " has the wrong size");
    if (entry.nbytes() > 0) {
      const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
      volatile uint8_t touch = bytes[0] ^ bytes[entry.nbytes() - 1];  // both ends lie in mapped memory
      (void)touch;
    }
  }
  return 0;
}

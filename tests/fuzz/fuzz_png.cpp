// libFuzzer harness: a file read by qwenvl-cli's PNG-only image reader (tools/media_reader_png.cpp),
// as `--image FILE` reads it. Every fault must be a CliError naming the file; a decoded image must be
// as large as its pixel buffer says.
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "media_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  fuzz::MemoryFile file(data, size);
  try {
    const cli::Image image = cli::read_image(file.path());
    fuzz::require(image.width > 0 && image.height > 0 && image.stride == image.width * 3, "bad image geometry");
    const uint8_t* pixels = image.pixels.get();
    volatile uint8_t touch = pixels[0] ^ pixels[static_cast<size_t>(image.stride) * image.height - 1];
    (void)touch;
  } catch (const cli::CliError& e) {
    fuzz::require_names_file(e.message, file.path());
  }
  return 0;
}

// qwenvl-frame-bytes: what one frame costs on the wire with the remote engine: the bytes of the PNG
// (libpng, the remote engine's settings) and the JPEGs (libjpeg, given qualities) that
// remote-image-format sends, their base64 size inside the JSON, and the time to encode each.
//   qwenvl-frame-bytes WIDTH HEIGHT FRAME.rgb [QUALITY...]     (raw packed RGB; default qualities 90 75)
// Prints one JSON object. scripts/frame_bytes.sh runs it over test patterns and images.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "frame_encoding.h"

namespace {

template <typename Encode>
nlohmann::json measure(Encode encode) {
  const auto start = std::chrono::steady_clock::now();
  const std::string file = encode();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return {{"bytes", file.size()}, {"base64_bytes", (file.size() + 2) / 3 * 4}, {"encode_ms", ms}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: qwenvl-frame-bytes WIDTH HEIGHT FRAME.rgb [QUALITY...]\n");
    return 1;
  }
  const int width = std::stoi(argv[1]), height = std::stoi(argv[2]);
  std::ifstream in(argv[3], std::ios::binary);
  const std::vector<uint8_t> rgb((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (rgb.size() != static_cast<size_t>(width) * height * 3) {
    std::fprintf(stderr, "qwenvl-frame-bytes: %s holds %zu bytes, not %dx%dx3\n", argv[3], rgb.size(), width, height);
    return 1;
  }
  std::vector<int> qualities;
  for (int i = 4; i < argc; ++i) qualities.push_back(std::stoi(argv[i]));
  if (qualities.empty()) qualities = {90, 75};
  nlohmann::json out = {{"width", width}, {"height", height}, {"raw_bytes", rgb.size()}};
  out["png"] = measure([&] { return qwenvl::remote::encode_png(rgb.data(), width, height); });
  for (int q : qualities)
    out["jpeg" + std::to_string(q)] = measure([&] { return qwenvl::remote::encode_jpeg(rgb.data(), width, height, q); });
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

// Reads the preprocessing references that scripts/fixtures/preprocess_cases.py writes with
// transformers 5.17: reference/preprocess/index.json plus raw little-endian .bin arrays.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/config.h"
#include "test_util.h"

namespace qwenvl::test {

inline std::filesystem::path preprocess_dir() { return fixtures_dir() / "reference" / "preprocess"; }

inline const nlohmann::json& preprocess_index() {
  static const nlohmann::json index = nlohmann::json::parse(read_text(preprocess_dir() / "index.json"));
  return index;
}

template <typename T>
std::vector<T> read_array(const std::string& file, size_t count) {
  const std::string bytes = read_text(preprocess_dir() / file);
  if (bytes.size() != count * sizeof(T))
    throw std::runtime_error(file + ": expected " + std::to_string(count * sizeof(T)) + " bytes, found " +
                             std::to_string(bytes.size()));
  std::vector<T> out(count);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

// The processor settings transformers used, as recorded from the processor object itself.
inline model::ProcessorConfig processor_config(const nlohmann::json& s) {
  model::ProcessorConfig c;
  c.min_pixels = s.at("min_pixels");
  c.max_pixels = s.at("max_pixels");
  c.patch_size = s.at("patch_size");
  c.temporal_patch_size = s.at("temporal_patch_size");
  c.merge_size = s.at("merge_size");
  c.image_mean = s.at("image_mean").get<std::vector<double>>();
  c.image_std = s.at("image_std").get<std::vector<double>>();
  c.rescale_factor = s.at("rescale_factor");
  c.do_resize = s.at("do_resize");
  c.do_rescale = s.at("do_rescale");
  c.do_normalize = s.at("do_normalize");
  c.resample = s.at("resample");
  return c;
}

struct FloatComparison {
  double max_abs_diff = 0;
  int64_t differing = 0;  // elements whose bits differ
};

inline FloatComparison compare_bits(const float* ours, const float* ref, size_t n) {
  FloatComparison r;
  for (size_t i = 0; i < n; ++i) {
    if (std::memcmp(ours + i, ref + i, sizeof(float)) != 0) {
      ++r.differing;
      const double d = std::abs(static_cast<double>(ours[i]) - static_cast<double>(ref[i]));
      if (!(d <= r.max_abs_diff)) r.max_abs_diff = d;  // NaN-safe: a NaN difference sticks
    }
  }
  return r;
}

}  // namespace qwenvl::test

// The benchmarks' comma-separated number options (--batches 1,64, --in-flight 64,128, --frames 1,8,32):
// one parser for every tool, std::stoi's or std::stoll's errors for what is not a number.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace qwenvl::tools {

template <typename T = int>
std::vector<T> parse_number_list(const std::string& text) {
  std::vector<T> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if constexpr (sizeof(T) > sizeof(int)) out.push_back(static_cast<T>(std::stoll(item)));
    else out.push_back(static_cast<T>(std::stoi(item)));
  }
  return out;
}

}  // namespace qwenvl::tools

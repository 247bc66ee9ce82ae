// Shared helpers for the test suites: where the reference fixtures are.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace qwenvl::test {

// The fixtures written by scripts/make_fixtures.sh; tests fail (never skip) when they are missing.
inline std::filesystem::path fixtures_dir() {
  const char* dir = std::getenv("QWENVL_FIXTURES");
  if (dir == nullptr || !std::filesystem::exists(dir))
    throw std::runtime_error("QWENVL_FIXTURES is unset or missing: run scripts/test.sh");
  return dir;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace qwenvl::test

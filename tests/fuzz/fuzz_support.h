// What the libFuzzer harnesses of tests/fuzz/ share: splitting one input into the several files a
// parser reads, writing them where the parser looks, and the checks that make a wrong answer a crash.
// A harness catches the errors a parser is meant to throw (qwenvl::Error) and nothing else: any other
// exception, a crash, a leak or a sanitizer report is a finding.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace qwenvl::fuzz {

// The input cut at each "\n---\n": the seeds of a harness that reads several files keep them readable.
inline std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t max_parts) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSeparator = "\n---\n";
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() + 1 < max_parts) {
    const size_t at = text.find(kSeparator, start);
    if (at == std::string_view::npos) break;
    parts.emplace_back(text.substr(start, at - start));
    start = at + kSeparator.size();
  }
  parts.emplace_back(text.substr(start));
  return parts;
}

// Ends the process as a crash that libFuzzer records, saying which property failed.
[[noreturn]] inline void violated(const std::string& what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void require(bool ok, const std::string& what) {
  if (!ok) violated(what);
}

// An error for a file must be one line that names the file.
inline void require_names_file(const std::string& message, const std::string& file) {
  require(message.find(file) != std::string::npos, "the error does not name " + file + ": " + message);
  require(message.find('\n') == std::string::npos, "the error is not one line: " + message);
}

// A directory of its own under the temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "qwenvl-fuzz-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) violated("cannot create a temporary directory");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, std::string_view content) const {
    const auto file = path_ / name;
    std::ofstream out(file, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) violated("cannot write " + file.string());
    return file;
  }

 private:
  std::filesystem::path path_;
};

// The bytes as a file that lives in memory only, named by a path (/proc/self/fd/N) while it lives.
class MemoryFile {
 public:
  MemoryFile(const uint8_t* data, size_t size) : fd_(::memfd_create("qwenvl-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) violated("memfd_create failed");
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) violated("cannot write the memory file");
      done += static_cast<size_t>(n);
    }
  }
  ~MemoryFile() { ::close(fd_); }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

}  // namespace qwenvl::fuzz

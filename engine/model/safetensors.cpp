#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "qwenvl/error.h"

namespace qwenvl::model {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& fault) {
  throw Error(fmt::format("{}: {}", path.string(), fault));
}

struct DTypeInfo {
  StoredDType dtype;
  const char* name;
  size_t size;
  at::ScalarType scalar;
};

constexpr DTypeInfo kDTypes[] = {
    {StoredDType::BOOL, "BOOL", 1, at::kBool},   {StoredDType::U8, "U8", 1, at::kByte},
    {StoredDType::I8, "I8", 1, at::kChar},       {StoredDType::I16, "I16", 2, at::kShort},
    {StoredDType::I32, "I32", 4, at::kInt},      {StoredDType::I64, "I64", 8, at::kLong},
    {StoredDType::F16, "F16", 2, at::kHalf},     {StoredDType::BF16, "BF16", 2, at::kBFloat16},
    {StoredDType::F32, "F32", 4, at::kFloat},    {StoredDType::F64, "F64", 8, at::kDouble},
};

const DTypeInfo& info(StoredDType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d;
  throw Error("internal: unlisted safetensors dtype");
}

std::string show_shape(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// Header values are checked one by one so that the message says which tensor and which field.
uint64_t read_unsigned(const std::filesystem::path& path, const std::string& tensor, const char* field,
                       const json& value) {
  if (!value.is_number_unsigned())
    fail(path, fmt::format("tensor '{}': {} holds {}, not a non-negative integer", tensor, field, value.dump()));
  return value.get<uint64_t>();
}

TensorEntry parse_entry(const std::filesystem::path& path, const std::string& name, const json& value,
                        uint64_t data_size) {
  if (!value.is_object()) fail(path, fmt::format("tensor '{}': header entry is not a JSON object", name));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!value.contains(field)) fail(path, fmt::format("tensor '{}': header entry lacks \"{}\"", name, field));
  TensorEntry entry;
  entry.name = name;

  const json& dtype = value["dtype"];
  if (!dtype.is_string()) fail(path, fmt::format("tensor '{}': dtype is not a string", name));
  const std::string dtype_str = dtype.get<std::string>();
  const DTypeInfo* found = nullptr;
  for (const auto& d : kDTypes)
    if (dtype_str == d.name) found = &d;
  if (found == nullptr) fail(path, fmt::format("tensor '{}': unknown dtype '{}'", name, dtype_str));
  entry.dtype = found->dtype;

  const json& shape = value["shape"];
  if (!shape.is_array()) fail(path, fmt::format("tensor '{}': shape is not an array", name));
  uint64_t elements = 1;
  bool overflow = false;
  for (const json& dim : shape) {
    const uint64_t d = read_unsigned(path, name, "shape", dim);
    if (d > static_cast<uint64_t>(INT64_MAX)) fail(path, fmt::format("tensor '{}': dimension {} is too large", name, d));
    entry.shape.push_back(static_cast<int64_t>(d));
    overflow |= __builtin_mul_overflow(elements, d, &elements);
  }
  uint64_t expected_bytes = 0;
  overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(found->size), &expected_bytes);

  const json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(path, fmt::format("tensor '{}': data_offsets is not a pair [begin, end]", name));
  entry.begin = read_unsigned(path, name, "data_offsets", offsets[0]);
  entry.end = read_unsigned(path, name, "data_offsets", offsets[1]);
  if (entry.end < entry.begin)
    fail(path, fmt::format("tensor '{}': data_offsets [{}, {}] end before they begin", name, entry.begin, entry.end));
  if (entry.end > data_size)
    fail(path, fmt::format("tensor '{}': data_offsets [{}, {}] lie outside the file's data region of {} bytes", name,
                           entry.begin, entry.end, data_size));
  if (overflow || expected_bytes != entry.nbytes())
    fail(path, fmt::format("tensor '{}': data_offsets [{}, {}] span {} bytes, but shape {} of {} needs {}", name,
                           entry.begin, entry.end, entry.nbytes(), show_shape(entry.shape), found->name,
                           overflow ? std::string("more than 2^64") : std::to_string(expected_bytes)));
  return entry;
}

}  // namespace

const char* dtype_name(StoredDType dtype) { return info(dtype).name; }
size_t dtype_size(StoredDType dtype) { return info(dtype).size; }
at::ScalarType scalar_type(StoredDType dtype) { return info(dtype).scalar; }

FileMapping::FileMapping(const std::filesystem::path& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO must not hang; only regular files are mapped.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) fail(path, "missing file (no such file or directory)");
    fail(path, fmt::format("cannot open: {}", std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, fmt::format("cannot stat: {}", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(path, fmt::format("cannot map {} bytes: {}", size_, std::strerror(err)));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
}

FileMapping::~FileMapping() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->mapping_ = std::make_shared<FileMapping>(path);
  const uint8_t* bytes = file->mapping_->data();
  const uint64_t file_size = file->mapping_->size();

  if (file_size < 8)
    fail(path, fmt::format("truncated: the file has {} bytes, fewer than the 8-byte header length", file_size));
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];  // little-endian
  if (header_size > kMaxHeaderBytes)
    fail(path, fmt::format("oversized header: header length {} exceeds the limit of {} bytes", header_size,
                           kMaxHeaderBytes));
  if (header_size > file_size - 8)
    fail(path, fmt::format("truncated header: header length {} exceeds the {} bytes after the length field",
                           header_size, file_size - 8));
  file->data_offset_ = 8 + header_size;
  const uint64_t data_size = file_size - file->data_offset_;

  // The header is parsed straight from the mapping. Nesting deeper than the format's own (object ->
  // entry -> shape) is refused during parsing, and so are duplicate names.
  constexpr int kMaxDepth = 3;
  bool too_deep = false;
  std::string duplicate;
  std::set<std::string> names;
  json::parser_callback_t limit = [&](int depth, json::parse_event_t event, json& parsed) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth > kMaxDepth) {
      too_deep = true;
      return false;
    }
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string() &&
        !names.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return !too_deep;
  };
  json header;
  try {
    header = json::parse(bytes + 8, bytes + 8 + header_size, limit);
  } catch (const json::exception& e) {
    fail(path, fmt::format("malformed JSON header: {}", e.what()));
  }
  if (too_deep) fail(path, "malformed JSON header: nested deeper than a safetensors header");
  if (!duplicate.empty()) fail(path, fmt::format("malformed JSON header: tensor '{}' appears twice", duplicate));
  if (!header.is_object()) fail(path, "malformed JSON header: not a JSON object");

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(path, "__metadata__ is not a JSON object");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) fail(path, fmt::format("__metadata__ value of '{}' is not a string", key));
        file->metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    file->tensors_.push_back(parse_entry(path, name, value, data_size));
  }

  std::sort(file->tensors_.begin(), file->tensors_.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Sorted by begin, two tensors overlap exactly when one begins before an earlier one ends.
  const TensorEntry* reach = nullptr;  // the tensor that ends last so far
  for (const TensorEntry& t : file->tensors_) {
    if (t.nbytes() == 0) continue;  // empty tensors occupy no bytes
    if (reach != nullptr && t.begin < reach->end)
      fail(path, fmt::format("tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", reach->name, reach->begin, reach->end,
                             t.name, t.begin, t.end));
    if (reach == nullptr || t.end > reach->end) reach = &t;
  }
  for (size_t i = 0; i < file->tensors_.size(); ++i) file->index_[file->tensors_[i].name] = i;
  return file;
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorEntry* entry = find(name);
  if (entry == nullptr) fail(path(), fmt::format("no tensor named '{}'", name));
  return tensor(*entry);
}

at::Tensor SafetensorsFile::tensor(const TensorEntry& entry) const {
  const auto options = at::TensorOptions().dtype(scalar_type(entry.dtype)).device(at::kCPU);
  const uint8_t* src = data_begin() + entry.begin;
  if (entry.nbytes() == 0 || reinterpret_cast<uintptr_t>(src) % dtype_size(entry.dtype) != 0) {
    at::Tensor copy = at::empty(entry.shape, options);
    if (entry.nbytes() > 0) std::memcpy(copy.data_ptr(), src, entry.nbytes());
    return copy;
  }
  // The deleter owns a reference to the mapping: the file stays mapped while any view lives.
  std::shared_ptr<FileMapping> keep = mapping_;
  return at::from_blob(const_cast<uint8_t*>(src), entry.shape, [keep](void*) mutable { keep.reset(); }, options);
}

}  // namespace qwenvl::model

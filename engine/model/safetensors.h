// The safetensors file format, read through a memory mapping: an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {..}}, then the data.
// Every fault of a file (truncation, an oversized header, offsets outside the data or overlapping,
// an unknown dtype, sizes that disagree with the shape) is a qwenvl::Error naming the file.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qwenvl::model {

// The dtypes we read. Anything else in a header ("F8_E4M3", "U16", ...) is an unknown-dtype error.
enum class StoredDType { BOOL, U8, I8, I16, I32, I64, F16, BF16, F32, F64 };

const char* dtype_name(StoredDType dtype);  // as the header spells it: "BF16"
size_t dtype_size(StoredDType dtype);
at::ScalarType scalar_type(StoredDType dtype);

struct TensorEntry {
  std::string name;
  StoredDType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets inside the data region (after the header)
  uint64_t end = 0;
  uint64_t nbytes() const { return end - begin; }
};

// A read-only mapping of a whole file; lives as long as any tensor viewing it.
class FileMapping {
 public:
  explicit FileMapping(const std::filesystem::path& path);  // throws qwenvl::Error
  ~FileMapping();
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class SafetensorsFile {
 public:
  // Largest header we accept (the reference implementation's bound): a header is never read
  // into memory before its length has been checked against this and against the file size.
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  // Maps and validates the file; throws qwenvl::Error naming it and the fault.
  static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return mapping_->path(); }
  // Tensors in the order of their data offsets.
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  const TensorEntry* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor as stored: a CPU tensor over the mapping (no copy) that keeps the mapping alive.
  // Data that is not aligned to its element size is copied instead (ATen kernels assume alignment).
  at::Tensor tensor(const TensorEntry& entry) const;
  at::Tensor tensor(const std::string& name) const;  // throws qwenvl::Error if absent

  // The bytes of the data region, for checks that a tensor really is a view of the file.
  const uint8_t* data_begin() const { return mapping_->data() + data_offset_; }
  const uint8_t* data_end() const { return mapping_->data() + mapping_->size(); }

 private:
  SafetensorsFile() = default;
  std::shared_ptr<FileMapping> mapping_;
  size_t data_offset_ = 0;
  std::vector<TensorEntry> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace qwenvl::model

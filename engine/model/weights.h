// A model directory's weights: model.safetensors, or the shards that model.safetensors.index.json
// names; checkpoint keys of either layout renamed to transformers 5.17's names; each tensor checked
// against the shape the config implies; tied embeddings; conversion to the requested dtype.
//
// A tensor whose stored dtype is the one requested stays a view of the file's memory mapping (no
// copy; the mapping lives as long as the tensor). Only a dtype or device change copies. The mapping
// is read-only: weights are never modified in place.
#pragma once

#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace qwenvl::model {

struct WeightLoadOptions {
  // Convert every weight to this floating dtype; unset keeps each tensor's stored dtype.
  std::optional<at::ScalarType> dtype;
  at::Device device = at::kCPU;
  // Shards are plain names inside the directory, and by default must resolve inside it. A Hugging
  // Face cache snapshot links its files to ../../blobs: allow that here when trusted.
  bool allow_links_outside = false;
};

struct Weight {
  at::Tensor tensor;
  at::ScalarType stored_dtype;  // as in the file (a tied alias reports its source's)
  std::filesystem::path file;   // the file it was read from
  std::string checkpoint_key;   // its name in that file
  bool mapped = false;          // a view of the file's mapping: not converted, not copied
  std::string alias_of;         // set when tied: the canonical name whose tensor this shares
};

class Weights {
 public:
  static constexpr const char* kSingleFile = "model.safetensors";
  static constexpr const char* kIndexFile = "model.safetensors.index.json";

  // Throws qwenvl::Error naming the file and the fault: a missing file, a malformed file or index,
  // a shard escaping the directory, a missing, unexpected or duplicate tensor, a dtype that is not
  // BF16 / F16 / F32, a shape that disagrees with the config.
  static Weights load(const std::filesystem::path& dir, const ModelConfig& config,
                      const WeightLoadOptions& options = {});

  // By canonical name (weight_names.h); throws qwenvl::Error naming an unknown name.
  const at::Tensor& get(const std::string& name) const { return entry(name).tensor; }
  const Weight& entry(const std::string& name) const;
  bool contains(const std::string& name) const { return weights_.count(name) != 0; }

  // Canonical names in module order (vision tower, language model, lm_head).
  const std::vector<std::string>& names() const { return names_; }
  size_t size() const { return names_.size(); }
  // True when lm_head.weight and the token embedding are one tensor.
  bool tied() const { return tied_; }
  // The safetensors files read, in the order read.
  const std::vector<std::filesystem::path>& files() const { return files_; }

 private:
  std::map<std::string, Weight> weights_;
  std::vector<std::string> names_;
  std::vector<std::filesystem::path> files_;
  bool tied_ = false;
};

}  // namespace qwenvl::model

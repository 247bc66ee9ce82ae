#include "model/weights.h"

#include <algorithm>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "model/weight_names.h"
#include "qwenvl/error.h"

namespace qwenvl::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uintmax_t kMaxIndexBytes = 100'000'000;

std::string show_shape(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// Component-wise prefix test on canonical paths ("/a/bc" is not inside "/a/b").
bool is_inside(const fs::path& dir, const fs::path& path) {
  auto p = path.begin();
  for (auto d = dir.begin(); d != dir.end(); ++d, ++p) {
    if (d->empty()) continue;  // a trailing separator
    if (p == path.end() || *d != *p) return false;
  }
  return p != path.end();
}

// The shard files model.safetensors.index.json names, sorted and unique (as transformers reads
// them), and the file each tensor is listed in.
struct ShardIndex {
  std::vector<fs::path> files;
  std::vector<std::pair<std::string, fs::path>> listed;  // checkpoint key -> shard file
};

ShardIndex read_index(const fs::path& dir, const fs::path& index_path, bool allow_links_outside) {
  auto fail = [&](const std::string& fault) -> void { throw Error(fmt::format("{}: {}", index_path.string(), fault)); };
  std::error_code ec;
  const uintmax_t size = fs::file_size(index_path, ec);
  if (ec) fail(fmt::format("cannot read: {}", ec.message()));
  if (size > kMaxIndexBytes) fail(fmt::format("index of {} bytes exceeds the limit of {} bytes", size, kMaxIndexBytes));
  std::ifstream in(index_path, std::ios::binary);
  if (!in) fail("cannot read");
  std::stringstream text;
  text << in.rdbuf();

  json index;
  try {
    index = json::parse(text.str());
  } catch (const json::exception& e) {
    fail(fmt::format("malformed JSON: {}", e.what()));
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail("no \"weight_map\" object");

  const fs::path canonical_dir = fs::canonical(dir);
  ShardIndex result;
  std::set<std::string> shard_names;
  for (const auto& [key, value] : index["weight_map"].items()) {
    if (!value.is_string()) fail(fmt::format("weight_map entry of tensor '{}' is not a string", key));
    const std::string shard = value.get<std::string>();
    // Only plain names: no separators, no "..", nothing absolute.
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
        shard.find('\0') != std::string::npos)
      fail(fmt::format("shard '{}' of tensor '{}' escapes the model directory: shards must be plain file names",
                       shard, key));
    const fs::path path = dir / shard;
    if (!allow_links_outside) {
      const fs::path resolved = fs::weakly_canonical(path, ec);
      if (ec || !is_inside(canonical_dir, resolved))
        fail(fmt::format("shard '{}' of tensor '{}' escapes the model directory: it resolves to {}", shard, key,
                         ec ? ec.message() : resolved.string()));
    }
    shard_names.insert(shard);
    result.listed.emplace_back(key, path);
  }
  if (shard_names.empty()) fail("weight_map lists no tensors");
  for (const std::string& name : shard_names) result.files.push_back(dir / name);
  return result;
}

// Where a canonical weight is stored.
struct Source {
  std::shared_ptr<const SafetensorsFile> file;
  const TensorEntry* entry;
};

}  // namespace

const Weight& Weights::entry(const std::string& name) const {
  auto it = weights_.find(name);
  if (it == weights_.end()) throw Error(fmt::format("no weight named '{}'", name));
  return it->second;
}

Weights Weights::load(const fs::path& dir, const ModelConfig& config, const WeightLoadOptions& options) {
  if (options.dtype && !at::isFloatingType(*options.dtype))
    throw Error(fmt::format("weights can only be converted to a floating dtype, not {}", c10::toString(*options.dtype)));
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(fmt::format("{}: missing model directory", dir.string()));

  // transformers prefers the single file when both exist.
  const fs::path single = dir / kSingleFile;
  const fs::path index_path = dir / kIndexFile;
  ShardIndex shards;
  fs::path listing;  // the file that says which tensors exist: named in missing-tensor errors
  if (fs::exists(single, ec)) {
    shards.files = {single};
    listing = single;
  } else if (fs::exists(index_path, ec)) {
    shards = read_index(dir, index_path, options.allow_links_outside);
    listing = index_path;
  } else {
    throw Error(fmt::format("{}: missing file: neither {} nor {} is there", dir.string(), kSingleFile, kIndexFile));
  }

  const WeightTable table(config);
  std::map<std::string, Source> sources;  // canonical name -> where stored
  std::vector<std::shared_ptr<const SafetensorsFile>> files;
  for (const fs::path& path : shards.files) {
    auto file = SafetensorsFile::open(path);
    files.push_back(file);
    for (const TensorEntry& t : file->tensors()) {
      const std::string name = table.canonical_name(t.name);
      const TensorSpec* spec = table.find(name);
      if (spec == nullptr)
        throw Error(fmt::format("{}: unexpected tensor '{}': not a weight of Qwen2.5-VL with this config "
                                "({} vision blocks, {} text layers)",
                                path.string(), t.name, config.vision.depth, config.text.num_hidden_layers));
      if (t.dtype != StoredDType::BF16 && t.dtype != StoredDType::F16 && t.dtype != StoredDType::F32)
        throw Error(fmt::format("{}: tensor '{}' has dtype {}; weights must be BF16, F16 or F32", path.string(),
                                t.name, dtype_name(t.dtype)));
      if (t.shape != spec->shape)
        throw Error(fmt::format("{}: tensor '{}' has shape {}, but the config expects {}", path.string(), t.name,
                                show_shape(t.shape), show_shape(spec->shape)));
      auto [it, fresh] = sources.emplace(name, Source{file, &t});
      if (!fresh)
        throw Error(fmt::format("{}: duplicate tensor: '{}' and '{}' in {} are both '{}'", path.string(), t.name,
                                it->second.entry->name, it->second.file->path().string(), name));
    }
  }
  // Each tensor the index lists must be in the shard it names.
  for (const auto& [key, path] : shards.listed) {
    auto it = std::find_if(files.begin(), files.end(), [&path = path](const auto& f) { return f->path() == path; });
    if (it == files.end() || (*it)->find(key) == nullptr)
      throw Error(fmt::format("{}: lists tensor '{}' in {}, which does not contain it", index_path.string(), key,
                              path.filename().string()));
  }

  // Tied embeddings, as transformers 5.17 ties them (PreTrainedModel.tie_weights): with only one of
  // the two stored, both are that tensor; with both stored, they are tied only if equal.
  const bool has_head = sources.count(names::kLmHead) != 0;
  const bool has_embed = sources.count(names::kEmbedTokens) != 0;
  std::string alias, alias_source;  // alias is filled from alias_source after loading
  if (config.tie_word_embeddings && has_embed && !has_head) {
    alias = names::kLmHead;
    alias_source = names::kEmbedTokens;
  } else if (config.tie_word_embeddings && has_head && !has_embed) {
    alias = names::kEmbedTokens;
    alias_source = names::kLmHead;
  }

  std::vector<std::string> missing;
  for (const TensorSpec& spec : table.specs())
    if (sources.count(spec.name) == 0 && spec.name != alias) missing.push_back(spec.name);
  if (!missing.empty()) {
    const size_t shown = std::min<size_t>(missing.size(), 3);
    std::vector<std::string> listed;
    for (size_t i = 0; i < shown; ++i)
      listed.push_back(fmt::format("'{}' (stored as '{}')", missing[i], original_checkpoint_key(missing[i])));
    throw Error(fmt::format("{}: missing tensor {}{}", listing.string(), fmt::join(listed, ", "),
                            missing.size() > shown ? fmt::format(" and {} more", missing.size() - shown) : ""));
  }

  Weights weights;
  weights.files_ = shards.files;
  for (const TensorSpec& spec : table.specs()) {
    if (spec.name == alias) continue;
    const Source& src = sources.at(spec.name);
    Weight w;
    w.stored_dtype = scalar_type(src.entry->dtype);
    w.file = src.file->path();
    w.checkpoint_key = src.entry->name;
    at::Tensor t = src.file->tensor(*src.entry);
    const uint8_t* view = src.file->data_begin() + src.entry->begin;
    try {
      if (options.dtype && t.scalar_type() != *options.dtype) t = t.to(*options.dtype);
      if (t.device() != options.device) t = t.to(options.device);
    } catch (const c10::Error& e) {
      throw Error(fmt::format("{}: tensor '{}': cannot convert to {} on {}: {}", w.file.string(), w.checkpoint_key,
                              c10::toString(options.dtype.value_or(t.scalar_type())), options.device.str(),
                              e.what_without_backtrace()));
    }
    w.mapped = t.numel() > 0 && static_cast<const void*>(t.data_ptr()) == static_cast<const void*>(view);
    w.tensor = std::move(t);
    weights.weights_.emplace(spec.name, std::move(w));
  }
  if (config.tie_word_embeddings && has_head && has_embed &&
      at::equal(weights.weights_.at(names::kLmHead).tensor, weights.weights_.at(names::kEmbedTokens).tensor)) {
    alias = names::kLmHead;  // equal: share one tensor and drop the other copy
    alias_source = names::kEmbedTokens;
  }
  if (!alias.empty()) {
    Weight w = weights.weights_.at(alias_source);
    w.alias_of = alias_source;
    weights.weights_[alias] = std::move(w);
    weights.tied_ = true;
  }
  for (const TensorSpec& spec : table.specs()) weights.names_.push_back(spec.name);
  return weights;
}

}  // namespace qwenvl::model

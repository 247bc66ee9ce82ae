// engine/model/weights.cpp and weight_names.cpp against transformers 5.17: for every layout and dtype
// case of scripts/fixtures/weights_cases.py the loaded tensors equal, bit for bit, the state_dict of
// from_pretrained; the name table equals the model's own; and every malformed model directory is a
// qwenvl::Error naming the file and the fault.
#include "error_of.h"
#include "model/weights.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <malloc.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <set>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "model/safetensors_test_util.h"
#include "model/weight_names.h"
#include "qwenvl/error.h"
#include "test_util.h"

namespace qwenvl::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;
using test::TempDir;

json read_json(const fs::path& path) { return json::parse(test::read_text(path)); }

at::ScalarType torch_dtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  throw std::runtime_error("unexpected dtype " + name);
}

// Same dtype, shape and bits (at::equal would let -0 equal +0).
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto as_int = a.element_size() == 4 ? at::kInt : at::kShort;
  return at::equal(a.contiguous().view(as_int), b.contiguous().view(as_int));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------
// Parity with transformers.

TEST(WeightsParity, EveryCaseEqualsTransformersStateDict) {
  const fs::path fixtures = test::fixtures_dir();
  const json cases = read_json(fixtures / "reference" / "weights_cases.json");
  // Every layout and conversion the loader supports has a case.
  for (const char* name : {"tiny-a", "tiny-a-fp16", "tiny-a-fp32", "tiny-a-bf16-as-fp16", "tiny-a-fp32-as-bf16",
                           "tiny-b", "tiny-b-as-bf16", "tiny-b-as-fp16", "tiny-b-v452", "tiny-b-base-model",
                           "tiny-b-tied-no-head", "tiny-b-tied-head-only", "tiny-b-tied-equal", "tiny-b-tied-differs"})
    EXPECT_TRUE(cases.contains(name)) << name;

  for (const auto& [name, c] : cases.items()) {
    SCOPED_TRACE(name);
    const fs::path dir = fixtures / c["directory"].get<std::string>();
    const at::ScalarType dtype = torch_dtype(c["dtype"]);
    const bool tied = c["tied"] == "1";
    const ModelConfig config = load_model_config(dir / "config.json");
    WeightLoadOptions options;
    options.dtype = dtype;
    const Weights weights = Weights::load(dir, config, options);
    auto reference = SafetensorsFile::open(fixtures / c["reference"].get<std::string>());

    EXPECT_EQ(weights.tied(), tied);
    std::set<std::string> expected_names;
    for (const TensorEntry& t : reference->tensors()) expected_names.insert(t.name);
    if (tied) expected_names.insert(names::kLmHead);  // left out of the reference file
    EXPECT_EQ(std::set<std::string>(weights.names().begin(), weights.names().end()), expected_names);

    for (const TensorEntry& t : reference->tensors()) {
      ASSERT_TRUE(weights.contains(t.name)) << t.name;
      const at::Tensor& got = weights.get(t.name);
      EXPECT_EQ(got.scalar_type(), dtype) << t.name;
      // The reference may hold a narrower type where exact (bf16/fp16 values of an fp32 load).
      EXPECT_TRUE(same_bits(got, reference->tensor(t).to(dtype))) << t.name;
      const Weight& w = weights.entry(t.name);
      EXPECT_EQ(w.mapped, w.stored_dtype == dtype) << t.name;
    }
    if (tied) {
      EXPECT_EQ(weights.get(names::kLmHead).data_ptr(), weights.get(names::kEmbedTokens).data_ptr());
      EXPECT_FALSE(weights.entry(names::kLmHead).alias_of.empty() &&
                   weights.entry(names::kEmbedTokens).alias_of.empty());
    } else {
      EXPECT_NE(weights.get(names::kLmHead).data_ptr(), weights.get(names::kEmbedTokens).data_ptr());
    }
  }
}

TEST(WeightsParity, StoredDtypeIsReported) {
  const fs::path fixtures = test::fixtures_dir();
  const std::vector<std::pair<fs::path, at::ScalarType>> dirs = {
      {fixtures / "models" / "tiny-a", at::kBFloat16},
      {fixtures / "weights" / "tiny-a-fp16", at::kHalf},
      {fixtures / "weights" / "tiny-a-fp32", at::kFloat},
      {fixtures / "models" / "tiny-b", at::kFloat}};
  for (const auto& [dir, stored] : dirs) {
    SCOPED_TRACE(dir.string());
    const Weights weights = Weights::load(dir, load_model_config(dir / "config.json"));  // stored dtype kept
    for (const std::string& name : weights.names()) {
      EXPECT_EQ(weights.entry(name).stored_dtype, stored) << name;
      EXPECT_EQ(weights.get(name).scalar_type(), stored) << name;
      EXPECT_TRUE(weights.entry(name).mapped) << name;
    }
  }
}

// Without conversion the tensors are the file's pages (the mapping /proc names), not copies.
TEST(WeightsMapping, UnconvertedTensorsAreViewsOfTheFiles) {
  const fs::path dir = test::fixtures_dir() / "models" / "tiny-b";
  const ModelConfig config = load_model_config(dir / "config.json");
  WeightLoadOptions options;
  options.dtype = at::kFloat;  // tiny-b is stored in fp32: nothing to convert
  const Weights weights = Weights::load(dir, config, options);
  EXPECT_EQ(weights.files().size(), 7u);
  for (const std::string& name : weights.names()) {
    const Weight& w = weights.entry(name);
    EXPECT_TRUE(w.mapped) << name;
    EXPECT_EQ(test::mapped_file_of(w.tensor.data_ptr()), fs::canonical(w.file).string()) << name;
  }
}

// Anonymous resident memory (heap copies), in bytes; mapped file pages are counted apart (RssFile).
int64_t anonymous_resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  int64_t kb = -1;
  while (status >> key) {
    if (key == "RssAnon:") {
      status >> kb;
      break;
    }
    status.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  if (kb < 0) throw std::runtime_error("no RssAnon in /proc/self/status");
  return kb * 1024;
}

TEST(WeightsMapping, LoadingWithoutConversionCopiesNothing) {
  const fs::path dir = test::fixtures_dir() / "weights" / "tiny-a-fp32";
  const ModelConfig config = load_model_config(dir / "config.json");
  const auto file_size = static_cast<int64_t>(fs::file_size(dir / "model.safetensors"));
  ASSERT_GT(file_size, 30'000'000);
  WeightLoadOptions options;
  options.dtype = at::kFloat;
  // Large blocks straight from and back to the kernel, so that a copy always shows and never hides
  // in heap memory an earlier test left resident.
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  ::malloc_trim(0);
  const int64_t before = anonymous_resident_bytes();
  {
    const Weights weights = Weights::load(dir, config, options);
    double sum = 0;  // read every weight: its pages become resident as file pages, not as copies
    for (const std::string& name : weights.names()) sum += weights.get(name).sum().item<double>();
    EXPECT_TRUE(std::isfinite(sum));
    EXPECT_LT(anonymous_resident_bytes() - before, file_size / 10);
  }
  // The measurement does see copies: converting to bf16 allocates half the file.
  options.dtype = at::kBFloat16;
  ::malloc_trim(0);
  const int64_t start = anonymous_resident_bytes();
  const Weights converted = Weights::load(dir, config, options);
  EXPECT_GT(anonymous_resident_bytes() - start, file_size * 4 / 10);
}

TEST(WeightsMapping, ConvertedTensorsAreCopies) {
  const fs::path dir = test::fixtures_dir() / "models" / "tiny-a";  // bf16
  WeightLoadOptions options;
  options.dtype = at::kFloat;
  const Weights weights = Weights::load(dir, load_model_config(dir / "config.json"), options);
  for (const std::string& name : weights.names()) {
    EXPECT_FALSE(weights.entry(name).mapped) << name;
    EXPECT_EQ(test::mapped_file_of(weights.get(name).data_ptr()).find("model.safetensors"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------------
// The name table against the model transformers builds from each config.

TEST(WeightTable, NamesAndShapesEqualTransformersModel) {
  const fs::path fixtures = test::fixtures_dir();
  const auto shapes = nlohmann::ordered_json::parse(test::read_text(fixtures / "reference" / "weights_shapes.json"));
  EXPECT_EQ(shapes.size(), 4u);  // tiny-a, tiny-b, the published 3B and 7B
  for (const auto& [dir, expected] : shapes.items()) {
    SCOPED_TRACE(dir);
    const WeightTable table(load_model_config(fixtures / dir / "config.json"));
    ASSERT_EQ(table.specs().size(), expected.size());
    size_t i = 0;
    for (const auto& [name, shape] : expected.items()) {  // same names, same (module) order
      EXPECT_EQ(table.specs()[i].name, name);
      EXPECT_EQ(table.specs()[i].shape, shape.get<std::vector<int64_t>>()) << name;
      ++i;
    }
  }
}

TEST(WeightTable, CheckpointKeysRenamedAsTransformersDoes) {
  const fs::path fixtures = test::fixtures_dir();
  const json renames = read_json(fixtures / "reference" / "weights_key_renames.json");
  const WeightTable table(load_model_config(fixtures / "models" / "tiny-b" / "config.json"));
  EXPECT_GE(renames.size(), 20u);
  for (const auto& [key, expected] : renames.items()) EXPECT_EQ(table.canonical_name(key), expected) << key;
}

TEST(WeightTable, OriginalKeysAreWhatTransformersSaves) {
  // tiny-b was written by transformers 5.17 save_pretrained: its files hold exactly the original keys.
  const fs::path dir = test::fixtures_dir() / "models" / "tiny-b";
  const WeightTable table(load_model_config(dir / "config.json"));
  std::set<std::string> stored, originals;
  const json index = read_json(dir / "model.safetensors.index.json");
  for (const auto& [key, shard] : index["weight_map"].items()) stored.insert(key);
  for (const TensorSpec& spec : table.specs()) originals.insert(original_checkpoint_key(spec.name));
  EXPECT_EQ(stored, originals);
}

// ---------------------------------------------------------------------------------------------------
// Malformed model directories, each made from tiny-b in a temporary directory.

class WeightsFaults : public ::testing::Test {
 protected:
  fs::path tiny_b = test::fixtures_dir() / "models" / "tiny-b";
  ModelConfig config = load_model_config(tiny_b / "config.json");
  TempDir dir;

  // tiny-b's tensors by stored (Hub) name, in index order.
  std::vector<std::pair<std::string, at::Tensor>> hub_tensors() const {
    std::vector<std::pair<std::string, at::Tensor>> out;
    const json index = read_json(tiny_b / "model.safetensors.index.json");
    for (const auto& [key, shard] : index["weight_map"].items())
      out.emplace_back(key, SafetensorsFile::open(tiny_b / shard.get<std::string>())->tensor(key).clone());
    return out;
  }
  // A one-file model directory holding these tensors.
  void write_single(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    fs::copy_file(tiny_b / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
    test::write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  }
  // A copy of tiny-b's sharded directory.
  void copy_sharded() {
    for (const auto& f : fs::directory_iterator(tiny_b)) fs::copy_file(f.path(), dir / f.path().filename().string(), fs::copy_options::overwrite_existing);
  }
  void edit_index(const std::function<void(json&)>& edit) {
    json index = read_json(dir / "model.safetensors.index.json");
    edit(index);
    test::write_bytes(dir / "model.safetensors.index.json", index.dump(2));
  }
  std::string load_error(const WeightLoadOptions& options = {}) {
    return error_of([&] { Weights::load(dir.path(), config, options); });
  }
  std::string first_shard() const {
    return read_json(tiny_b / "model.safetensors.index.json")["weight_map"]["lm_head.weight"].get<std::string>();
  }
};

TEST_F(WeightsFaults, WellFormedCopyLoads) {
  write_single(hub_tensors());
  EXPECT_EQ(load_error(), "");
  copy_sharded();
  fs::remove(dir / "model.safetensors");
  EXPECT_EQ(load_error(), "");
}

TEST_F(WeightsFaults, MissingTensor) {
  auto tensors = hub_tensors();
  tensors.erase(std::find_if(tensors.begin(), tensors.end(),
                             [](const auto& t) { return t.first == "visual.blocks.1.attn.qkv.bias"; }));
  write_single(tensors);
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / "model.safetensors").string()));
  EXPECT_THAT(message,
              HasSubstr("missing tensor 'model.visual.blocks.1.attn.qkv.bias' (stored as 'visual.blocks.1.attn.qkv.bias')"));
}

TEST_F(WeightsFaults, MissingLmHeadWhenNotTied) {
  auto tensors = hub_tensors();
  tensors.erase(std::find_if(tensors.begin(), tensors.end(), [](const auto& t) { return t.first == "lm_head.weight"; }));
  write_single(tensors);
  ASSERT_FALSE(config.tie_word_embeddings);
  EXPECT_THAT(load_error(), HasSubstr("missing tensor 'lm_head.weight'"));
}

TEST_F(WeightsFaults, MissingTensorOfAShardedModelNamesTheIndex) {
  copy_sharded();
  const std::string shard = first_shard();
  auto tensors = hub_tensors();
  std::vector<std::pair<std::string, at::Tensor>> kept;
  for (const auto& [key, t] : tensors)
    if (key != "lm_head.weight" && read_json(tiny_b / "model.safetensors.index.json")["weight_map"][key] == shard)
      kept.emplace_back(key, t);
  test::write_safetensors(dir / shard, kept);  // the shard without lm_head.weight
  edit_index([](json& index) { index["weight_map"].erase("lm_head.weight"); });
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / "model.safetensors.index.json").string()));
  EXPECT_THAT(message, HasSubstr("missing tensor 'lm_head.weight'"));
}

TEST_F(WeightsFaults, UnexpectedTensor) {
  auto tensors = hub_tensors();
  tensors.emplace_back("model.layers.7.mlp.up_proj.weight", at::zeros({96, 64}));  // tiny-b has 2 layers
  write_single(tensors);
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / "model.safetensors").string()));
  EXPECT_THAT(message, HasSubstr("unexpected tensor 'model.layers.7.mlp.up_proj.weight'"));
}

TEST_F(WeightsFaults, ShapeDisagreesWithConfig) {
  auto tensors = hub_tensors();
  for (auto& [key, t] : tensors)
    if (key == "model.layers.1.self_attn.k_proj.weight") t = at::zeros({t.size(0) + 1, t.size(1)});
  write_single(tensors);
  const std::vector<int64_t> expected = {config.text.num_key_value_heads * config.text.head_dim(),
                                         config.text.hidden_size};
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / "model.safetensors").string()));
  EXPECT_THAT(message, HasSubstr(fmt::format("tensor 'model.layers.1.self_attn.k_proj.weight' has shape [{}, {}], "
                                             "but the config expects [{}, {}]",
                                             expected[0] + 1, expected[1], expected[0], expected[1])));
}

TEST_F(WeightsFaults, DtypeThatIsNotAFloatWeight) {
  auto tensors = hub_tensors();
  for (auto& [key, t] : tensors)
    if (key == "model.norm.weight") t = t.to(at::kInt);
  write_single(tensors);
  EXPECT_THAT(load_error(), HasSubstr("tensor 'model.norm.weight' has dtype I32; weights must be BF16, F16 or F32"));
}

TEST_F(WeightsFaults, SameWeightUnderTwoLayouts) {
  auto tensors = hub_tensors();
  tensors.emplace_back("model.language_model.norm.weight", at::ones({config.text.hidden_size}));
  write_single(tensors);
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr("duplicate tensor"));
  EXPECT_THAT(message, HasSubstr("'model.language_model.norm.weight'"));
}

TEST_F(WeightsFaults, NoWeightFiles) {
  fs::copy_file(tiny_b / "config.json", dir / "config.json");
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr(dir.path().string()));
  EXPECT_THAT(message, HasSubstr("missing file"));
}

TEST_F(WeightsFaults, MissingDirectory) {
  const std::string message = error_of([&] { Weights::load(dir / "nowhere", config); });
  EXPECT_THAT(message, HasSubstr((dir / "nowhere").string()));
  EXPECT_THAT(message, HasSubstr("missing model directory"));
}

TEST_F(WeightsFaults, ShardNameWithParentDirectory) {
  copy_sharded();
  edit_index([](json& index) { index["weight_map"]["lm_head.weight"] = "../model-00001-of-00007.safetensors"; });
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / "model.safetensors.index.json").string()));
  EXPECT_THAT(message, HasSubstr("shard '../model-00001-of-00007.safetensors' of tensor 'lm_head.weight' escapes "
                                 "the model directory"));
}

TEST_F(WeightsFaults, AbsoluteShardName) {
  copy_sharded();
  edit_index([](json& index) { index["weight_map"]["model.norm.weight"] = "/etc/passwd"; });
  EXPECT_THAT(load_error(), HasSubstr("shard '/etc/passwd' of tensor 'model.norm.weight' escapes the model directory"));
}

TEST_F(WeightsFaults, ShardLinkedFromOutsideTheDirectory) {
  copy_sharded();
  TempDir elsewhere;
  const std::string shard = first_shard();
  fs::rename(dir / shard, elsewhere / shard);
  fs::create_symlink(elsewhere / shard, dir / shard);
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / "model.safetensors.index.json").string()));
  EXPECT_THAT(message, HasSubstr("shard '" + shard + "' of tensor"));
  EXPECT_THAT(message, HasSubstr("escapes the model directory: it resolves to " + (elsewhere / shard).string()));
  // Trusted (a Hugging Face cache snapshot links into ../../blobs): allowed on request.
  WeightLoadOptions options;
  options.allow_links_outside = true;
  EXPECT_EQ(load_error(options), "");
}

TEST_F(WeightsFaults, LinkInsideTheDirectoryIsFine) {
  copy_sharded();
  const std::string shard = first_shard();
  fs::rename(dir / shard, dir / ("real-" + shard));
  fs::create_symlink("real-" + shard, dir / shard);
  EXPECT_EQ(load_error(), "");
}

TEST_F(WeightsFaults, IndexListsATensorInTheWrongShard) {
  copy_sharded();
  std::string other;
  edit_index([&](json& index) {
    other = index["weight_map"]["model.norm.weight"].get<std::string>();
    ASSERT_NE(other, index["weight_map"]["lm_head.weight"].get<std::string>());
    index["weight_map"]["lm_head.weight"] = other;
  });
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / "model.safetensors.index.json").string()));
  EXPECT_THAT(message, HasSubstr("lists tensor 'lm_head.weight' in " + other + ", which does not contain it"));
}

TEST_F(WeightsFaults, MalformedIndex) {
  copy_sharded();
  test::write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\": {\"a\": ");
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / "model.safetensors.index.json").string()));
  EXPECT_THAT(message, HasSubstr("malformed JSON"));
}

TEST_F(WeightsFaults, IndexWithoutWeightMap) {
  copy_sharded();
  test::write_bytes(dir / "model.safetensors.index.json", "{\"metadata\": {}}");
  EXPECT_THAT(load_error(), HasSubstr("model.safetensors.index.json: no \"weight_map\" object"));
}

TEST_F(WeightsFaults, MissingShard) {
  copy_sharded();
  const std::string shard = first_shard();
  fs::remove(dir / shard);
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / shard).string()));
  EXPECT_THAT(message, HasSubstr("missing file"));
}

TEST_F(WeightsFaults, TruncatedShard) {
  copy_sharded();
  const std::string shard = first_shard();
  fs::resize_file(dir / shard, 100);  // inside the header
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / shard).string()));
  EXPECT_THAT(message, HasSubstr("truncated header"));
}

TEST_F(WeightsFaults, DataCutShortInsideTheData) {
  write_single(hub_tensors());
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 4);
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr((dir / "model.safetensors").string()));
  EXPECT_THAT(message, HasSubstr("lie outside the file's data region"));
}

TEST_F(WeightsFaults, UnknownNameLookup) {
  write_single(hub_tensors());
  const Weights weights = Weights::load(dir.path(), config);
  EXPECT_THAT(error_of([&] { weights.get("model.visual.blocks.99.norm1.weight"); }),
              HasSubstr("no weight named 'model.visual.blocks.99.norm1.weight'"));
}

}  // namespace
}  // namespace qwenvl::model

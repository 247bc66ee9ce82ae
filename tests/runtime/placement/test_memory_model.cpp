// The memory model (runtime/placement/memory_model.h): weights to the byte of the real checkpoints
// (the fixture models' safetensors headers, the published parameter counts), the KV cache as the
// engine sizes it, and working sets that grow with what they hold.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "qwenvl/placement.h"
#include "runtime/placement/memory_model.h"
#include "runtime/placement/model_parts.h"
#include "runtime/placement/published_shapes.h"
#include "runtime/placement/workload.h"
#include "test_util.h"

namespace qwenvl::runtime::placement {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The tensors of a model directory's safetensors files, from their headers: bytes and dtype.
struct Checkpoint {
  int64_t bytes = 0;
  std::string dtype;  // the engine's name for the one dtype they share
  int64_t embedding_bytes = 0;
};

Checkpoint read_checkpoint(const fs::path& dir) {
  Checkpoint c;
  for (const auto& file : fs::directory_iterator(dir)) {
    if (file.path().extension() != ".safetensors") continue;
    std::ifstream in(file.path(), std::ios::binary);
    uint64_t length = 0;
    in.read(reinterpret_cast<char*>(&length), sizeof length);  // little-endian, as on every test host
    std::string header(length, '\0');
    in.read(header.data(), static_cast<std::streamsize>(length));
    const json tensors = json::parse(header);
    for (const auto& [name, tensor] : tensors.items()) {
      if (name == "__metadata__") continue;
      const int64_t bytes = tensor["data_offsets"][1].get<int64_t>() - tensor["data_offsets"][0].get<int64_t>();
      c.bytes += bytes;
      if (name.find("embed_tokens") != std::string::npos) c.embedding_bytes = bytes;
      const std::string dtype = tensor["dtype"] == "BF16"  ? "bfloat16"
                                : tensor["dtype"] == "F32" ? "float32"
                                                           : "float16";
      EXPECT_TRUE(c.dtype.empty() || c.dtype == dtype) << name;
      c.dtype = dtype;
    }
  }
  return c;
}

int64_t planned_weights(const Plan& plan) {
  int64_t sum = 0;
  for (const DevicePlan& d : plan.devices) sum += d.memory.weights;
  return sum;
}

class FixtureWeights : public ::testing::TestWithParam<std::string> {};

// tiny-a: bf16, tied embeddings, one file; tiny-b: fp32, its own LM head, seven shards.
TEST_P(FixtureWeights, AreTheCheckpointsTensorBytes) {
  const fs::path dir = test::fixtures_dir() / "models" / GetParam();
  const Checkpoint checkpoint = read_checkpoint(dir);
  ASSERT_GT(checkpoint.bytes, 0);
  PlanRequest request;
  request.model_dir = dir.string();
  request.dtype = checkpoint.dtype;
  request.max_context = 256;
  request.devices = "cpu=4GiB";
  EXPECT_EQ(planned_weights(plan(request)), checkpoint.bytes);

  // Over a pipeline every tensor is placed once; a tied LM head is a copy of the embeddings on the
  // last stage (the first keeps them for the lookup).
  request.placement = Placement::kPipeline;
  const model::ModelConfig config = model::load_model_config(dir / "config.json");
  // Two devices may take the vision tower alone and every layer on the other; three split the layers.
  for (const auto& [devices, layers_split] : {std::pair<const char*, bool>{"cpu=4GiB,cpu=4GiB", false},
                                              std::pair<const char*, bool>{"cpu=4GiB,cpu=4GiB,cpu=4GiB", true}}) {
    request.devices = devices;
    const Plan pipeline = plan(request);
    bool split = false;  // the embeddings and the LM head on different devices
    for (const DevicePlan& d : pipeline.devices) split = split || (d.embeddings != d.lm_head);
    if (layers_split) EXPECT_TRUE(split);
    const int64_t copy = config.tie_word_embeddings && split ? checkpoint.embedding_bytes : 0;
    EXPECT_EQ(planned_weights(pipeline), checkpoint.bytes + copy) << devices;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, FixtureWeights, ::testing::Values("tiny-a", "tiny-b"));

struct Shape {
  model::ModelConfig config;
  ModelParts parts;
};

Shape shape_of(const test::PublishedShape& published) {
  const fs::path dir = fs::temp_directory_path() / ("qwenvl_memory_" + std::to_string(::getpid()));
  Shape s;
  s.config = model::load_model_config(test::write_model_dir(published, dir) / "config.json");
  fs::remove_all(dir);
  s.parts = model_parts(s.config);
  return s;
}

Workload workload_of(const ModelParts& parts, PlanRequest request = {}) {
  model::ProcessorConfig image;
  image.max_pixels = 12845056;
  return resolve_workload(request, parts, image, true);
}

StageRoles whole(const ModelParts& parts) {
  return StageRoles{0, static_cast<int64_t>(parts.layers.size()), true, true, true};
}

TEST(Weights, ThePublishedParameterCounts) {
  for (const test::PublishedShape& published : {test::kQwen3B, test::kQwen7B, test::kQwen32B, test::kQwen72B}) {
    const Shape s = shape_of(published);
    const Workload w = workload_of(s.parts);
    const int64_t parameters = MemoryModel(s.parts, w).weight_bytes(whole(s.parts)) / w.dtype_bytes;
    if (published.parameters > 0) {
      EXPECT_EQ(parameters, published.parameters) << published.name;
    } else {
      EXPECT_NEAR(static_cast<double>(parameters), 73.4e9, 0.05e9) << published.name;  // the Hub's "73.4B"
    }
  }
}

// nn/kv_cache.cpp and runtime/engine.cpp: 2 x layers x kv_heads x head_dim x dtype bytes a token,
// max_batch x ceil(max_context / block_size) blocks of block_size tokens.
TEST(KvCache, AsTheEngineSizesIt) {
  const Shape s = shape_of(test::kQwen7B);
  for (int64_t context : {8192, 8000, 100}) {
    PlanRequest r;
    r.max_context = context;
    r.max_batch = 5;
    r.kv_block_size = 32;
    const Workload w = workload_of(s.parts, r);
    const int64_t per_token = 2 * 28 * 4 * 128 * 2;
    const int64_t blocks = 5 * ((context + 31) / 32);
    const MemoryModel memory(s.parts, w);
    EXPECT_EQ(memory.stage(whole(s.parts), {true, 132}, 5).kv_cache, per_token * 32 * blocks) << context;
    StageRoles some{3, 10, false, false, false};  // a stage holds its own layers' share
    EXPECT_EQ(memory.stage(some, {true, 132}, 5).kv_cache, per_token / 28 * 7 * 32 * blocks) << context;
  }
}

TEST(WorkingSets, GrowWithWhatTheyHold) {
  const Shape s = shape_of(test::kQwen7B);
  const MemoryTarget gpu{true, 132};
  StageRoles vision_only;
  vision_only.vision = true;
  // The activations of `roles` with the request changed by `change`.
  auto activations = [&](const StageRoles& roles, const std::function<void(PlanRequest&)>& change) {
    PlanRequest r;
    change(r);
    const Workload w = workload_of(s.parts, r);
    return MemoryModel(s.parts, w).stage(roles, gpu, 16).activations;
  };
  EXPECT_LT(activations(vision_only, [](PlanRequest& r) { r.max_pixels = 200704; }),
            activations(vision_only, [](PlanRequest& r) { r.max_pixels = 1003520; }));
  StageRoles middle{4, 8, false, false, false};
  EXPECT_LT(activations(middle, [](PlanRequest& r) { r.prefill_chunk_tokens = 1024; }),
            activations(middle, [](PlanRequest& r) { r.prefill_chunk_tokens = 4096; }));

  // The last stage keeps the logits of every sequence; the first the step's vision features.
  const Workload w = workload_of(s.parts);
  const MemoryModel m(s.parts, w);
  StageRoles last{4, 8, false, true, false}, first{4, 8, true, false, false};
  EXPECT_GT(m.stage(last, gpu, 16).activations, m.stage(middle, gpu, 16).activations);
  EXPECT_GT(m.stage(first, gpu, 16).activations, m.stage(middle, gpu, 16).activations);
  EXPECT_EQ(m.stage(StageRoles{}, gpu, 16).total(), 0);  // a device that holds nothing
}

TEST(Workspace, OnAGpuOnly) {
  const Shape s = shape_of(test::kQwen7B);
  const Workload w = workload_of(s.parts);
  const MemoryModel m(s.parts, w);
  const MemoryEstimate cpu = m.stage(whole(s.parts), {false, 0}, 16), gpu = m.stage(whole(s.parts), {true, 132}, 16);
  EXPECT_EQ(cpu.workspace, 0);
  EXPECT_GT(gpu.workspace, int64_t{33} << 20);  // at least one cuBLAS workspace
  // Both keep 5% of the transient bytes for fragmentation; a GPU adds the caching allocator's rounding.
  EXPECT_EQ(cpu.margin, static_cast<int64_t>(0.05 * static_cast<double>(cpu.activations + cpu.workspace)));
  EXPECT_GT(gpu.margin, static_cast<int64_t>(0.05 * static_cast<double>(gpu.activations + gpu.workspace)));
  EXPECT_EQ(gpu.weights, cpu.weights);
  EXPECT_EQ(gpu.kv_cache, cpu.kv_cache);
  // Without decode graphs there is no graph pool: the workspace is the stream's cuBLAS one.
  PlanRequest eager;
  eager.cuda_graphs = false;
  const Workload we = workload_of(s.parts, eager);
  EXPECT_EQ(MemoryModel(s.parts, we).stage(whole(s.parts), {true, 132}, 16).workspace, int64_t{33} << 20);
}

}  // namespace
}  // namespace qwenvl::runtime::placement

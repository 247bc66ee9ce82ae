// qwenvl::plan (qwenvl/placement.h) on the published 3B, 7B, 32B and 72B shapes: one device, eight,
// uneven ones, replicas against stages, a cap too small (the error names the shortfall and what
// would fit, and what it names does fit), and plans whose totals are the sum of what they place.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <regex>
#include <set>
#include <string>

#include "error_of.h"
#include "qwenvl/placement.h"
#include "runtime/placement/published_shapes.h"
#include "test_util.h"

namespace qwenvl {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
constexpr int64_t kGiB = int64_t{1} << 30;

class Planner : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("qwenvl_planner_" + std::to_string(::getpid()));
    for (const test::PublishedShape& s : {test::kQwen3B, test::kQwen7B, test::kQwen32B, test::kQwen72B})
      test::write_model_dir(s, dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static PlanRequest request(const test::PublishedShape& shape, const std::string& devices) {
    PlanRequest r;
    r.model_dir = (dir_ / shape.name).string();
    r.devices = devices;
    return r;
  }
  static fs::path dir_;
};
fs::path Planner::dir_;

int64_t sum(const Plan& p, int64_t MemoryEstimate::*term) {
  int64_t total = 0;
  for (const DevicePlan& d : p.devices) total += d.memory.*term;
  return total;
}

// Every layer on exactly one device, in list order; the embeddings, the LM head and the vision
// tower once each; every device within its budget.
void expect_sound_pipeline(const Plan& p) {
  ASSERT_EQ(p.mode, Placement::kPipeline);
  int64_t next = 0;
  int embeddings = 0, heads = 0, towers = 0, stages = 0, cpu_stages = 0;
  std::set<std::string> cards;  // GPUs holding layers
  for (const DevicePlan& d : p.devices) {
    if (d.end_layer > d.first_layer) {
      if (d.device == "cpu") ++cpu_stages;
      else cards.insert(d.device);
      EXPECT_EQ(d.first_layer, next) << d.device;
      EXPECT_EQ(d.stage, stages++) << d.device;
      next = d.end_layer;
    } else {
      EXPECT_TRUE(d.vision_tower) << d.device << " holds nothing";
    }
    embeddings += d.embeddings;
    heads += d.lm_head;
    towers += d.vision_tower;
    EXPECT_LE(d.memory.total(), d.budget_bytes) << d.device;
    EXPECT_EQ(d.memory.total(),
              d.memory.weights + d.memory.kv_cache + d.memory.activations + d.memory.workspace + d.memory.margin);
  }
  EXPECT_EQ(next, p.text_layers);
  EXPECT_EQ(embeddings, 1);
  EXPECT_EQ(heads, 1);
  EXPECT_EQ(towers, 1);
  EXPECT_EQ(p.micro_batches, cpu_stages + static_cast<int>(cards.size())) << "one per GPU holding layers, per CPU stage";
  EXPECT_GT(p.tokens_per_second, 0);
}

TEST_F(Planner, OneDevice) {
  const Plan p = plan(request(test::kQwen7B, "cuda:0"));
  EXPECT_EQ(p.mode, Placement::kPipeline);
  ASSERT_EQ(p.devices.size(), 1u);
  const DevicePlan& d = p.devices[0];
  EXPECT_EQ(d.device, "cuda:0");
  EXPECT_EQ(d.profile, "h100");
  EXPECT_TRUE(d.embeddings && d.lm_head && d.vision_tower);
  EXPECT_EQ(d.end_layer, 28);
  EXPECT_EQ(d.memory.weights, test::kQwen7B.parameters * 2);  // bf16: a GPU in the list, dtype auto
  EXPECT_EQ(p.dtype, "bfloat16");
  // No cap and no GPU queried: the profile's memory, said in the notes.
  EXPECT_EQ(d.budget_bytes, 81559 * (int64_t{1} << 20) - kGiB);
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_THAT(p.notes[0], HasSubstr("the h100 profile's 79.6 GiB (no GPU is queried while planning)"));
  expect_sound_pipeline(p);
  EXPECT_GT(d.decode_ms, 0);
  EXPECT_GT(d.prefill_ms, 0);
  EXPECT_GT(d.vision_ms, 0);
  EXPECT_NEAR(p.tokens_per_second, 16 / (d.step_ms / 1e3), 1e-6 * p.tokens_per_second);
  const std::string text = to_text(p);
  for (const char* part :
       {"Qwen2.5-VL-7B-Instruct", "cuda:0", "h100", "layers 0-27", "LM head", "vision tower", "predicted", "notes:"})
    EXPECT_THAT(text, HasSubstr(part));
}

TEST_F(Planner, EightDevices) {
  const Plan p = plan(request(test::kQwen72B, "cuda:0,cuda:1,cuda:2,cuda:3,cuda:4,cuda:5,cuda:6,cuda:7"));
  ASSERT_EQ(p.devices.size(), 8u);
  expect_sound_pipeline(p);
  for (const DevicePlan& d : p.devices) EXPECT_GT(d.memory.total(), 0) << d.device;
}

// Summed over devices the plan holds the model's weights once (a tied head's copy aside) and the
// KV cache of one device holding every layer.
TEST_F(Planner, TotalsAreTheSumOfWhatIsPlaced) {
  for (const test::PublishedShape& shape : {test::kQwen3B, test::kQwen7B, test::kQwen32B}) {
    PlanRequest one = request(shape, "cuda:0@h200");
    one.max_pixels = 1003520;
    one.max_batch = 4;
    const Plan whole = plan(one);
    PlanRequest three = one;
    three.devices = "cuda:0=40GiB,cuda:1=30GiB,cuda:2@h200=50GiB";
    three.placement = Placement::kPipeline;
    const Plan split = plan(three);
    expect_sound_pipeline(split);
    bool apart = false;  // the embeddings and the LM head on different devices
    for (const DevicePlan& d : split.devices) apart = apart || d.embeddings != d.lm_head;
    const int64_t copy = shape.tied && apart ? shape.vocab * shape.hidden * 2 : 0;
    EXPECT_EQ(sum(split, &MemoryEstimate::weights), sum(whole, &MemoryEstimate::weights) + copy) << shape.name;
    EXPECT_EQ(sum(split, &MemoryEstimate::kv_cache), sum(whole, &MemoryEstimate::kv_cache)) << shape.name;
  }
}

TEST_F(Planner, UnevenDevices) {
  // Uneven caps: both within budget, the smaller holding less.
  const Plan caps = plan(request(test::kQwen7B, "cuda:0=36GiB,cuda:1=12GiB"));
  expect_sound_pipeline(caps);
  EXPECT_LT(caps.devices[1].memory.total(), caps.devices[0].memory.total());
  // An H200 beside an H100: more memory and bandwidth, more layers.
  const Plan cards = plan(request(test::kQwen72B, "cuda:0,cuda:1@h200"));
  expect_sound_pipeline(cards);
  EXPECT_GT(cards.devices[1].end_layer - cards.devices[1].first_layer,
            cards.devices[0].end_layer - cards.devices[0].first_layer);
}

TEST_F(Planner, ReplicasWhereTheyFitAndAreFaster) {
  const Plan replicas = plan(request(test::kQwen7B, "cuda:0,cuda:1"));
  EXPECT_EQ(replicas.mode, Placement::kReplicas);
  for (size_t i = 0; i < replicas.devices.size(); ++i) {
    const DevicePlan& d = replicas.devices[i];
    EXPECT_EQ(d.replica, static_cast<int>(i));
    EXPECT_TRUE(d.embeddings && d.lm_head && d.vision_tower);
    EXPECT_EQ(d.end_layer - d.first_layer, 28);
    EXPECT_LE(d.memory.total(), d.budget_bytes);
  }
  PlanRequest staged = request(test::kQwen7B, "cuda:0,cuda:1");
  staged.placement = Placement::kPipeline;
  const Plan pipeline = plan(staged);
  expect_sound_pipeline(pipeline);
  EXPECT_GT(replicas.tokens_per_second, pipeline.tokens_per_second);

  // 72B fits no single 80 GB card: auto takes stages, and replicas say what is missing.
  PlanRequest large = request(test::kQwen72B, "cuda:0,cuda:1");
  large.max_batch = 4;
  expect_sound_pipeline(plan(large));
  large.placement = Placement::kReplicas;
  const std::string error = test::error_of([&] { plan(large); });
  EXPECT_THAT(error, HasSubstr("with placement replicas: cuda:0 needs"));
  EXPECT_THAT(error, HasSubstr("cuda:1 needs"));
}

// The published configurations on the hosts the issue names (seed scenario): which fit as asked.
TEST_F(Planner, PublishedShapesOnTheirHosts) {
  PlanRequest small = request(test::kQwen3B, "cuda:0=12GiB,cuda:1=12GiB");
  small.max_pixels = 1003520;  // 1280 image tokens: the default 16 images of 8191 tokens a step need 17 GiB alone
  expect_sound_pipeline(plan(small));
  expect_sound_pipeline(plan(request(test::kQwen32B, "cuda:0,cuda:1")));
  expect_sound_pipeline(plan(request(test::kQwen72B, "cuda:0,cuda:1,cuda:2,cuda:3")));
  expect_sound_pipeline(plan(request(test::kQwen72B, "cuda:0@h200,cuda:1@h200")));
  EXPECT_THAT(test::error_of([&] { plan(request(test::kQwen72B, "cuda:0,cuda:1")); }), HasSubstr("it would fit with"));
}

// The numbers the error names are computed: what it says fits does, one step further does not.
TEST_F(Planner, CapTooSmallSaysWhatIsMissingAndWhatWouldFit) {
  PlanRequest r = request(test::kQwen7B, "cuda:0=18GiB");
  r.max_pixels = 1003520;
  const std::string error = test::error_of([&] { plan(r); });
  EXPECT_EQ(error.find('\n'), std::string::npos);
  EXPECT_THAT(error, HasSubstr("does not fit on cuda:0=18GiB"));
  EXPECT_THAT(error, HasSubstr("cuda:0 needs"));
  EXPECT_THAT(error, HasSubstr("of its 18.0 GiB"));
  EXPECT_THAT(error, HasSubstr("short: weights 15.4 GiB"));

  // A value the error names fits; one more does not.
  auto largest = [&](const char* pattern, const std::function<void(PlanRequest&, int64_t)>& set) {
    std::smatch m;
    ASSERT_TRUE(std::regex_search(error, m, std::regex(pattern))) << error;
    PlanRequest changed = r;
    set(changed, std::stoll(m[1]));
    EXPECT_NO_THROW(plan(changed)) << pattern;
    set(changed, std::stoll(m[1]) + 1);
    EXPECT_THROW(plan(changed), Error) << pattern;
  };
  largest("a max context of (\\d+) tokens", [](PlanRequest& c, int64_t v) { c.max_context = v; });
  largest("a max batch of (\\d+) sequences", [](PlanRequest& c, int64_t v) { c.max_batch = static_cast<int>(v); });

  std::smatch m;
  ASSERT_TRUE(std::regex_search(error, m, std::regex("(\\d+) more devices? like cuda:0"))) << error;
  PlanRequest more = r;
  for (int i = 1; i <= std::stoi(m[1]); ++i) more.devices += ",cuda:" + std::to_string(i) + "=18GiB";
  EXPECT_NO_THROW(plan(more));
}

TEST_F(Planner, StagesSharingACard) {
  PlanRequest r = request(test::kQwen7B, "cuda:0=20GiB,cuda:0=20GiB");
  r.placement = Placement::kPipeline;
  r.max_pixels = 1003520;
  const Plan p = plan(r);
  expect_sound_pipeline(p);
  EXPECT_EQ(p.devices[0].device, "cuda:0");
  EXPECT_EQ(p.devices[1].device, "cuda:0");
  bool said = false;
  for (const std::string& note : p.notes) said = said || note.find("2 entries share it") != std::string::npos;
  EXPECT_TRUE(said);
  // Uncapped entries of one card share what the caps leave.
  const Plan shared = plan(request(test::kQwen7B, "cuda:0=30GiB,cuda:0,cuda:0"));
  EXPECT_EQ(shared.devices[1].budget_bytes, (81559 * (int64_t{1} << 20) - kGiB - 30 * kGiB) / 2);
  EXPECT_EQ(shared.devices[1].budget_bytes, shared.devices[2].budget_bytes);
}

TEST_F(Planner, TheHostWithoutACap) {
  PlanRequest r;
  r.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  r.max_context = 256;
  const Plan p = plan(r);
  ASSERT_EQ(p.devices.size(), 1u);
  EXPECT_EQ(p.devices[0].device, "cpu");
  EXPECT_EQ(p.dtype, "float32");
  EXPECT_GT(p.devices[0].budget_bytes, 0);
  EXPECT_THAT(p.notes.at(0), HasSubstr("available on this host"));
}

TEST_F(Planner, BadRequests) {
  auto error = [&](const std::function<void(PlanRequest&)>& change) {
    PlanRequest r = request(test::kQwen7B, "cuda:0");
    change(r);
    return test::error_of([&] { plan(r); });
  };
  EXPECT_THAT(error([](PlanRequest& r) { r.max_batch = 0; }), HasSubstr("max_batch is 0"));
  EXPECT_THAT(error([](PlanRequest& r) { r.max_context = 1; }), HasSubstr("max_context is 1"));
  EXPECT_THAT(error([](PlanRequest& r) { r.kv_block_size = 24; }), HasSubstr("multiple of 16"));
  EXPECT_THAT(error([](PlanRequest& r) { r.dtype = "int8"; }), HasSubstr("unknown dtype 'int8'"));
  EXPECT_THAT(error([](PlanRequest& r) { r.devices = "tpu:0"; }), HasSubstr("unknown device 'tpu:0'"));
  EXPECT_THAT(error([](PlanRequest& r) { r.devices = "cuda:0@h200,cuda:0"; }), HasSubstr("one device has one profile"));
  EXPECT_THAT(error([](PlanRequest& r) { r.model_dir += "-missing"; }), HasSubstr("not a model directory"));
  PlanRequest tiny;
  tiny.model_dir = (test::fixtures_dir() / "models" / "tiny-b").string();
  tiny.devices = "cpu=1GiB,cpu=1GiB,cpu=1GiB,cpu=1GiB";
  tiny.placement = Placement::kPipeline;
  EXPECT_THAT(test::error_of([&] { plan(tiny); }), HasSubstr("4 devices for a model of 2 decoder layers"));
}

}  // namespace
}  // namespace qwenvl

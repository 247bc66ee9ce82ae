// A layer split given by hand (PlanRequest::split, qwenvl/placement.h) priced instead of searched:
// the same bytes and times the search gives the same split, a split over a budget reported in the
// plan rather than thrown, and splits that are not a pipeline refused with the fault named.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "error_of.h"
#include "qwenvl/placement.h"
#include "runtime/placement/published_shapes.h"

namespace qwenvl {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class GivenSplit : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("qwenvl_layer_split_" + std::to_string(::getpid()));
    for (const test::PublishedShape& s : {test::kQwen3B, test::kQwen7B}) test::write_model_dir(s, dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static PlanRequest request(const test::PublishedShape& shape, const std::string& devices) {
    PlanRequest r;
    r.model_dir = (dir_ / shape.name).string();
    r.devices = devices;
    r.placement = Placement::kPipeline;
    r.max_pixels = 1003520;
    return r;
  }
  static fs::path dir_;
};
fs::path GivenSplit::dir_;

// The split a plan made: its layer ranges and the vision tower's device.
LayerSplit split_of(const Plan& p) {
  LayerSplit split;
  for (size_t i = 0; i < p.devices.size(); ++i) {
    split.layers.push_back({p.devices[i].first_layer, p.devices[i].end_layer});
    if (p.devices[i].vision_tower) split.vision_device = static_cast<int>(i);
  }
  return split;
}

void expect_same_devices(const Plan& given, const Plan& searched) {
  ASSERT_EQ(given.devices.size(), searched.devices.size());
  EXPECT_EQ(given.micro_batches, searched.micro_batches);
  EXPECT_DOUBLE_EQ(given.tokens_per_second, searched.tokens_per_second);
  for (size_t i = 0; i < given.devices.size(); ++i) {
    const DevicePlan &g = given.devices[i], &s = searched.devices[i];
    SCOPED_TRACE(s.device);
    EXPECT_EQ(g.stage, s.stage);
    EXPECT_EQ(g.first_layer, s.first_layer);
    EXPECT_EQ(g.end_layer, s.end_layer);
    EXPECT_EQ(g.embeddings, s.embeddings);
    EXPECT_EQ(g.lm_head, s.lm_head);
    EXPECT_EQ(g.vision_tower, s.vision_tower);
    EXPECT_EQ(g.memory.weights, s.memory.weights);
    EXPECT_EQ(g.memory.kv_cache, s.memory.kv_cache);
    EXPECT_EQ(g.memory.activations, s.memory.activations);
    EXPECT_EQ(g.memory.workspace, s.memory.workspace);
    EXPECT_EQ(g.memory.margin, s.memory.margin);
    EXPECT_DOUBLE_EQ(g.step_ms, s.step_ms);
    EXPECT_DOUBLE_EQ(g.decode_ms, s.decode_ms);
    EXPECT_EQ(g.over_budget_bytes(), 0);
  }
}

// The search's own choice, given back as a split, is priced to the byte and the nanosecond as the
// search priced it: one memory model and one time model. Among the cases, the vision tower on a
// later stage than the embeddings, and on a device of its own.
TEST_F(GivenSplit, PricesASplitAsTheSearchDoes) {
  bool vision_alone = false;
  for (const char* devices : {"cuda:0=20GiB,cuda:1=20GiB", "cuda:0=16GiB,cuda:1=16GiB,cuda:2=3GiB",
                              "cuda:0=14GiB,cuda:1=9GiB,cuda:2@h200=30GiB", "cuda:0=12GiB,cuda:1=12GiB,cuda:2=12GiB"}) {
    SCOPED_TRACE(devices);
    PlanRequest r = request(test::kQwen7B, devices);
    if (std::string(devices).find("=12GiB") != std::string::npos) {
      // Small images one at a time: the tower alone on one card is one micro-batch fewer.
      r.max_context = 1024;
      r.max_pixels = 200704;
      r.images_per_step = 1;
    }
    const Plan searched = plan(r);
    ASSERT_FALSE(searched.given);
    for (const DevicePlan& d : searched.devices)
      vision_alone = vision_alone || (d.vision_tower && d.end_layer == d.first_layer);
    PlanRequest given = r;
    given.split = split_of(searched);
    const Plan priced = plan(given);
    EXPECT_TRUE(priced.given);
    EXPECT_TRUE(priced.fits());
    EXPECT_EQ(priced.mode, Placement::kPipeline);
    expect_same_devices(priced, searched);
    EXPECT_THAT(to_text(priced), HasSubstr("the split given fits every device's budget"));
  }
  EXPECT_TRUE(vision_alone) << "no case put the vision tower on a device of its own";
}

// transformers' device_map="auto" for the 3B on two 12 GiB cards (scripts/placement/device_map.sh):
// layers 0-10 with the vision tower and the embeddings on GPU 0, 11-35 on GPU 1. Placement auto
// takes a split as the pipeline it is; every part is placed once (the tied LM head's matrix again
// on GPU 1, apart from the embeddings), and so is the KV cache.
TEST_F(GivenSplit, PlacesEveryPartOnce) {
  PlanRequest r = request(test::kQwen3B, "cuda:0=11GiB,cuda:1=11GiB");
  r.placement = Placement::kAuto;
  r.split = parse_layer_split("0-10,11-35");
  const Plan split = plan(r);
  EXPECT_EQ(split.mode, Placement::kPipeline);
  EXPECT_EQ(split.micro_batches, 2);
  PlanRequest one = request(test::kQwen3B, "cuda:0@h200");
  const Plan whole = plan(one);
  const DevicePlan &a = split.devices[0], &b = split.devices[1], &w = whole.devices[0];
  EXPECT_TRUE(a.vision_tower && a.embeddings && !a.lm_head);
  EXPECT_TRUE(!b.vision_tower && !b.embeddings && b.lm_head);
  EXPECT_EQ(a.end_layer, 11);
  EXPECT_EQ(b.first_layer, 11);
  EXPECT_EQ(a.memory.weights + b.memory.weights, w.memory.weights + test::kQwen3B.vocab * test::kQwen3B.hidden * 2);
  EXPECT_EQ(a.memory.kv_cache + b.memory.kv_cache, w.memory.kv_cache);
  EXPECT_EQ(a.memory.kv_cache * 25, b.memory.kv_cache * 11);  // by its layers
}

// Over a budget the split is still the plan: the bytes each device would need, which devices are
// over and by how much; nothing is thrown. The same request searched finds a split that fits.
TEST_F(GivenSplit, OverABudgetIsReportedNotThrown) {
  PlanRequest r = request(test::kQwen7B, "cuda:0=8GiB,cuda:1=23GiB");
  r.split = parse_layer_split("0-20,21-27");
  Plan p;
  ASSERT_NO_THROW(p = plan(r));
  EXPECT_FALSE(p.fits());
  const DevicePlan &first = p.devices[0], &second = p.devices[1];
  EXPECT_GT(first.memory.total(), first.budget_bytes);
  EXPECT_EQ(first.over_budget_bytes(), first.memory.total() - first.budget_bytes);
  EXPECT_EQ(second.over_budget_bytes(), 0);
  EXPECT_EQ(first.end_layer, 21);
  const std::string text = to_text(p);
  EXPECT_THAT(text, HasSubstr("the pipeline given (a layer split, priced, not searched)"));
  EXPECT_THAT(text, HasSubstr("the split given does not fit: cuda:0 needs"));
  EXPECT_THAT(text, HasSubstr("of its 8.0 GiB"));
  EXPECT_EQ(text.find("cuda:1 needs"), std::string::npos);

  PlanRequest searched = r;
  searched.split.reset();
  EXPECT_TRUE(plan(searched).fits());
}

TEST_F(GivenSplit, MalformedTextNamesTheItem) {
  auto error = [](const std::string& text, int vision = 0) {
    return test::error_of([&] { parse_layer_split(text, vision); });
  };
  EXPECT_THAT(error(""), HasSubstr("item 1 '': is empty"));
  EXPECT_THAT(error("0-10,"), HasSubstr("item 2 '': is empty"));
  EXPECT_THAT(error("0-10,x"), HasSubstr("item 2 'x': not a range of layers"));
  EXPECT_THAT(error("0-10,11-"), HasSubstr("item 2 '11-': not a range of layers"));
  EXPECT_THAT(error("0--3"), HasSubstr("not a range of layers"));
  EXPECT_THAT(error("0-10,27-11"), HasSubstr("item 2 '27-11': the range runs backwards"));
  EXPECT_THAT(error("0-99999999999"), HasSubstr("not a range of layers"));
  EXPECT_THAT(error("0-27", -1), HasSubstr("the vision tower's device is -1"));
  const LayerSplit ok = parse_layer_split(" 0-10 , 11 ,-,12-27", 2);
  ASSERT_EQ(ok.layers.size(), 4u);
  EXPECT_EQ(ok.layers[0].first, 0);
  EXPECT_EQ(ok.layers[0].end, 11);
  EXPECT_EQ(ok.layers[1].first, 11);
  EXPECT_EQ(ok.layers[1].end, 12);
  EXPECT_EQ(ok.layers[2].first, ok.layers[2].end);
  EXPECT_EQ(ok.vision_device, 2);
}

// Splits that are not a pipeline of the model over the list: one line naming the fault.
TEST_F(GivenSplit, NotAPipelineNamesTheFault) {
  auto error = [&](const std::string& devices, const std::string& layers, int vision = 0,
                   Placement placement = Placement::kPipeline) {
    PlanRequest r = request(test::kQwen7B, devices);
    r.placement = placement;
    r.split = parse_layer_split(layers, vision);
    const std::string e = test::error_of([&] { plan(r); });
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    return e;
  };
  const std::string two = "cuda:0=23GiB,cuda:1=23GiB";
  EXPECT_THAT(error(two, "0-27"), HasSubstr("layer split: 1 range for 2 devices"));
  EXPECT_THAT(error(two, "0-9,10-19,20-27"), HasSubstr("layer split: 3 ranges for 2 devices"));
  EXPECT_THAT(error(two, "0-10,12-27"), HasSubstr("layer split: layer 11 is on no device"));
  EXPECT_THAT(error(two, "1-10,11-27"), HasSubstr("layer split: layer 0 is on no device"));
  EXPECT_THAT(error(two, "0-10,11-25"), HasSubstr("layer split: layers 26-27 are on no device"));
  EXPECT_THAT(error(two, "0-11,11-27"),
              HasSubstr("layer split: device 1 (cuda:1) starts at layer 11, which a device before it holds"));
  EXPECT_THAT(error(two, "11-27,0-10"), HasSubstr("layers 0-10 are on no device"));
  EXPECT_THAT(error(two, "0-10,11-30"),
              HasSubstr("device 1 (cuda:1) holds up to layer 30, but the model has 28 decoder layers (0-27)"));
  EXPECT_THAT(error(two, "0-27,-"),
              HasSubstr("layer split: device 1 (cuda:1) holds neither layers nor the vision tower"));
  EXPECT_THAT(error(two, "-,-", 0), HasSubstr("device 1 (cuda:1) holds neither layers nor the vision tower"));
  EXPECT_THAT(error(two, "0-10,11-27", 2), HasSubstr("the vision tower on device 2 of a list of 2 (positions 0-1)"));
  EXPECT_THAT(error(two, "0-10,11-27", 0, Placement::kReplicas),
              HasSubstr("layer split: a split is a pipeline; placement replicas takes none"));
  EXPECT_THAT(error("cuda:0=23GiB", "-"), HasSubstr("layers 0-27 are on no device"));
}

}  // namespace
}  // namespace qwenvl

// The search over placements (runtime/placement/partition_search.h): exact against every placement
// enumerated by brute force, layer and device speeds that move the cut, the vision tower's place.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <memory>

#include "model/config.h"
#include "runtime/placement/device_list.h"
#include "runtime/placement/model_parts.h"
#include "runtime/placement/partition_search.h"
#include "runtime/placement/published_shapes.h"
#include "runtime/placement/workload.h"

namespace qwenvl::runtime::placement {
namespace {

namespace fs = std::filesystem;

// A model of the 7B's widths with `layers` decoder layers, planned for `devices`.
struct Planned {
  Planned(int64_t layers, const std::string& devices, PlanRequest request = {}) {
    const fs::path dir = fs::temp_directory_path() / ("qwenvl_partition_" + std::to_string(::getpid()));
    test::PublishedShape shape = test::kQwen7B;
    shape.layers = layers;
    config = model::load_model_config(test::write_model_dir(shape, dir) / "config.json");
    fs::remove_all(dir);
    parts = model_parts(config);
    request.devices = devices;
    specs = parse_devices(devices);
    image.max_pixels = 12845056;
    workload = resolve_workload(request, parts, image, true);
    DeviceFacts facts;
    facts.host_available_bytes = int64_t{64} << 30;
    entries = device_entries(specs, facts, workload.dtype_bytes, notes);
  }
  PartitionSearch search() const { return PartitionSearch(parts, workload, entries); }

  model::ModelConfig config;
  model::ProcessorConfig image;
  ModelParts parts;
  std::vector<DeviceSpec> specs;
  Workload workload;
  std::vector<std::string> notes;
  std::vector<DeviceEntry> entries;
};

PlanRequest small_request() {
  PlanRequest r;
  r.max_context = 1024;
  r.max_pixels = 200704;
  r.images_per_step = 1;
  return r;
}

// Every pipeline over the entries: each entry either a chain member with at least one layer, in
// list order, or (at most one) the vision tower's own; the tower on exactly one entry.
void enumerate(const PartitionSearch& search, const std::vector<DeviceEntry>& entries, int64_t n, int64_t batch,
               const std::function<void(const Candidate&)>& visit) {
  const size_t k = entries.size();
  for (size_t alone = 0; alone <= k; ++alone) {  // k: no entry of its own
    std::vector<size_t> chain;
    for (size_t i = 0; i < k; ++i)
      if (i != alone) chain.push_back(i);
    if (chain.empty() || static_cast<int64_t>(chain.size()) > n) continue;
    // Cuts: chain.size() - 1 increasing positions in [1, n - 1], as a bitmask over n - 1 places.
    for (uint64_t mask = 0; mask < (uint64_t{1} << (n - 1)); ++mask) {
      if (static_cast<size_t>(__builtin_popcountll(mask)) != chain.size() - 1) continue;
      std::vector<int64_t> bounds = {0};
      for (int64_t p = 1; p < n; ++p)
        if (mask >> (p - 1) & 1) bounds.push_back(p);
      bounds.push_back(n);
      for (size_t vision = 0; vision < (alone < k ? 1 : chain.size()); ++vision) {
        Candidate c;
        std::vector<std::string> stage_devices;
        for (size_t e : chain) stage_devices.push_back(entries[e].spec.device);
        c.micro_batches = pipeline_micro_batches(stage_devices);
        c.rows = (batch + c.micro_batches - 1) / c.micro_batches;
        c.roles.assign(k, StageRoles{});
        for (size_t s = 0; s < chain.size(); ++s)
          c.roles[chain[s]] =
              StageRoles{bounds[s], bounds[s + 1], bounds[s] == 0, bounds[s + 1] == n, alone == k && s == vision};
        if (alone < k) c.roles[alone].vision = true;
        visit(c);
      }
    }
  }
  (void)search;
}

struct DeviceCase {
  std::string devices;
  bool some_fit;  // whether any placement fits (and then not every one does)
};
void PrintTo(const DeviceCase& c, std::ostream* os) { *os << c.devices; }

class ExactSearch : public ::testing::TestWithParam<DeviceCase> {};

TEST_P(ExactSearch, FindsTheFastestPlacementThatFits) {
  const int64_t n = 7;
  const Planned s(n, GetParam().devices, small_request());
  const PartitionSearch search = s.search();
  double best = 0;
  int placements = 0, fitting = 0;
  enumerate(search, s.entries, n, s.workload.max_batch, [&](const Candidate& c) {
    ++placements;
    if (!search.fits(c)) return;
    ++fitting;
    best = std::max(best, search.tokens_per_second(c));
  });
  EXPECT_EQ(fitting > 0, GetParam().some_fit);
  EXPECT_LT(fitting, placements);  // the budgets rule some out: the search must respect them
  const std::optional<Candidate> found = search.fastest_pipeline();
  ASSERT_EQ(found.has_value(), fitting > 0);
  if (!found) return;
  EXPECT_TRUE(search.fits(*found));
  EXPECT_NEAR(search.tokens_per_second(*found), best, best * 1e-12);
}

// Even and uneven cards, caps that rule out some cuts, a shared card, the host, nothing that fits.
INSTANTIATE_TEST_SUITE_P(Devices, ExactSearch,
                         ::testing::Values(DeviceCase{"cuda:0=4GiB,cuda:1=4GiB", true},
                                           DeviceCase{"cuda:0=4GiB,cuda:1=9GiB,cuda:2=3GiB", true},
                                           DeviceCase{"cuda:0@h200=8GiB,cuda:1=5GiB", true},
                                           DeviceCase{"cuda:0=5GiB,cuda:0=5GiB,cuda:1=4GiB", true},
                                           DeviceCase{"cuda:0=3GiB,cuda:1=3GiB,cuda:2=3GiB,cuda:3=3GiB", true},
                                           DeviceCase{"cpu=5GiB,cuda:0=6GiB", true},
                                           DeviceCase{"cuda:0=1GiB,cuda:1=1GiB", false}));

// Where the language model's layers split between two devices that cannot each hold it all.
int64_t cut(const Planned& s) {
  const std::optional<Candidate> c = s.search().fastest_pipeline();
  EXPECT_TRUE(c.has_value());
  if (!c) return -1;
  EXPECT_EQ(c->micro_batches, 2);
  return c->roles[0].end_layer;
}

TEST(Cut, UnevenLayerTimesMoveIt) {
  Planned even(12, "cuda:0=7GiB,cuda:1=7GiB", small_request());
  Planned heavy_front(12, "cuda:0=7GiB,cuda:1=7GiB", small_request());
  Planned heavy_back(12, "cuda:0=7GiB,cuda:1=7GiB", small_request());
  auto heavier = [](Part& p) {
    for (int64_t& t : p.tensors) t *= 2;
    p.elements *= 2;
    p.matmul_elements *= 2;
  };
  for (int i = 0; i < 3; ++i) {
    heavier(heavy_front.parts.layers[i]);
    heavier(heavy_back.parts.layers[11 - i]);
  }
  const int64_t middle = cut(even);
  EXPECT_LT(cut(heavy_front), middle);
  EXPECT_GT(cut(heavy_back), middle);
}

TEST(Cut, TheLmHeadTakesLayersFromTheLastStage) {
  // Two equal cards: the last stage reads the LM head (vocab x hidden) every step, so it gets fewer layers.
  const Planned s(12, "cuda:0=7GiB,cuda:1=7GiB", small_request());
  const int64_t c = cut(s);
  EXPECT_GT(c, 12 - c);
}

TEST(Cut, AFasterDeviceTakesMoreLayers) {
  // The same caps; the h200 reads memory 4.8 / 3.35 times as fast.
  const int64_t h100_first = cut(Planned(12, "cuda:0=7GiB,cuda:1=7GiB", small_request()));
  const int64_t h200_first = cut(Planned(12, "cuda:0@h200=7GiB,cuda:1=7GiB", small_request()));
  const int64_t h200_second = cut(Planned(12, "cuda:0=7GiB,cuda:1@h200=7GiB", small_request()));
  EXPECT_GT(h200_first, h100_first);
  EXPECT_LT(h200_second, h100_first);
}

TEST(Vision, RunsWhereItCostsLeast) {
  // Room for the tower's working set (16 images of 8191 tokens) on the second card only.
  PlanRequest r;
  const Planned s(12, "cuda:0=12GiB,cuda:1=40GiB", r);
  const std::optional<Candidate> c = s.search().fastest_pipeline();
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(c->roles[0].vision);
  EXPECT_TRUE(c->roles[1].vision);
}

TEST(Vision, MayHaveADeviceOfItsOwn) {
  // Three cards, two of which hold the layers: the tower alone on one is one micro-batch fewer.
  const Planned s(12, "cuda:0=12GiB,cuda:1=12GiB,cuda:2=12GiB", small_request());
  const std::optional<Candidate> c = s.search().fastest_pipeline();
  ASSERT_TRUE(c.has_value());
  int alone = 0;
  for (const StageRoles& r : c->roles) alone += r.vision && r.layers() == 0;
  EXPECT_EQ(alone, 1);
  EXPECT_EQ(c->micro_batches, 2);
}

TEST(Structure, MoreDevicesThanLayersAndATower) {
  const Planned s(2, "cpu=1GiB,cpu=1GiB,cpu=1GiB,cpu=1GiB", small_request());
  EXPECT_NE(s.search().structural_problem().find("at most 3 devices"), std::string::npos)
      << s.search().structural_problem();
  EXPECT_FALSE(s.search().fastest_pipeline().has_value());
  EXPECT_TRUE(Planned(2, "cpu=1GiB,cpu=1GiB,cpu=1GiB", small_request()).search().structural_problem().empty());
}

TEST(Replicas, HoldTheWholeModelEach) {
  const Planned s(4, "cuda:0=20GiB,cuda:1@h200=20GiB", small_request());
  const PartitionSearch search = s.search();
  const Candidate c = search.replicas();
  ASSERT_EQ(c.roles.size(), 2u);
  for (const StageRoles& r : c.roles) {
    EXPECT_EQ(r.first_layer, 0);
    EXPECT_EQ(r.end_layer, 4);
    EXPECT_TRUE(r.embeddings && r.lm_head && r.vision);
  }
  EXPECT_EQ(c.rows, s.workload.max_batch);
  // Each replica decodes its own max_batch: the throughputs add up.
  const double one = s.workload.max_batch / search.times(c, 0).step,
               two = s.workload.max_batch / search.times(c, 1).step;
  EXPECT_NEAR(search.tokens_per_second(c), one + two, (one + two) * 1e-12);
  EXPECT_GT(two, one);  // the h200
}

}  // namespace
}  // namespace qwenvl::runtime::placement

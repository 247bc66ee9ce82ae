// The device list of qwenvl/placement.h (one parser for every front end) and the byte sizes in it:
// good lists read as written, bad ones fail with one line naming the entry and what is wrong.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "error_of.h"
#include "qwenvl/placement.h"
#include "runtime/placement/byte_size.h"
#include "runtime/placement/device_list.h"
#include "test_util.h"

namespace qwenvl {
namespace {

using ::testing::HasSubstr;
constexpr int64_t kGiB = int64_t{1} << 30;

TEST(DeviceList, CapsInEveryUnit) {
  const std::vector<std::pair<std::string, int64_t>> caps = {{"22GiB", 22 * kGiB},
                                                             {"22.5GiB", 22 * kGiB + kGiB / 2},
                                                             {"80GB", 80'000'000'000},
                                                             {"512MiB", 512 << 20},
                                                             {"1TiB", 1024 * kGiB},
                                                             {"3KB", 3000},
                                                             {"4KiB", 4096},
                                                             {"100B", 100},
                                                             {"8gib", 8 * kGiB},
                                                             {"0.5 GiB", kGiB / 2},
                                                             {"1.25GB", 1'250'000'000},
                                                             {"2.5MB", 2'500'000}};
  for (const auto& [cap, bytes] : caps) {
    const std::vector<DeviceSpec> specs = parse_devices("cuda:0=" + cap);
    ASSERT_EQ(specs.size(), 1u) << cap;
    EXPECT_EQ(specs[0].cap_bytes, bytes) << cap;
  }
}

TEST(DeviceList, DevicesProfilesAndRepeats) {
  const std::vector<DeviceSpec> specs = parse_devices(" cuda , cuda:1@h200=80GiB,cpu=8GiB,cuda:01 ,cuda:1@h200");
  ASSERT_EQ(specs.size(), 5u);
  EXPECT_EQ(specs[0].device, "cuda:0");  // plain "cuda" is the engine's cuda:0
  EXPECT_EQ(specs[0].profile, "h100");   // the default for cuda
  EXPECT_FALSE(specs[0].cap_bytes.has_value());
  EXPECT_EQ(specs[1].device, "cuda:1");
  EXPECT_EQ(specs[1].profile, "h200");
  EXPECT_EQ(specs[1].cap_bytes, 80 * kGiB);
  EXPECT_EQ(specs[2].device, "cpu");
  EXPECT_EQ(specs[2].profile, "cpu");
  EXPECT_EQ(specs[2].cap_bytes, 8 * kGiB);
  EXPECT_EQ(specs[3].device, "cuda:1");  // the same card again: a second stage on it
  EXPECT_EQ(specs[4].device, "cuda:1");
}

struct BadList {
  std::string list, says;
};

TEST(DeviceList, BadListsNameTheEntry) {
  const std::vector<BadList> cases = {
      {"", "device list is empty"},
      {"  ", "device list is empty"},
      {"cuda:0,,cpu", "entry 2 '': is empty"},
      {"cuda:0,", "entry 2 '': is empty"},
      {"gpu", "entry 1 'gpu': unknown device 'gpu' (use cpu, cuda or cuda:N)"},
      {"cpu,cuda:x", "entry 2 'cuda:x': unknown device 'cuda:x'"},
      {"cuda:", "unknown device 'cuda:'"},
      {"cuda:-1", "unknown device 'cuda:-1'"},
      {"cuda:0=22", "entry 1 'cuda:0=22': cap '22': a size needs a unit"},
      {"cuda:0=22XB", "cap '22XB': unknown unit 'XB'"},
      {"cuda:0=GiB", "a size starts with a number"},
      {"cuda:0=.5GiB", "a size starts with a number"},
      {"cuda:0=1.GiB", "a decimal point needs digits after it"},
      {"cuda:0=-3GiB", "a size starts with a number"},
      {"cuda:0=0GiB", "a size must be at least one byte"},
      {"cuda:0=0.1B", "a size must be at least one byte"},
      {"cuda:0=2000TiB", "above 1 PiB"},
      {"cuda:0=99999999999999999999999GiB", "above 1 PiB"},
      {"cuda:0@tpu", "unknown device profile 'tpu' (known: h100, h200, cpu)"},
      {"cpu@h100", "profile 'h100' is for cuda devices"},
      {"cuda:0@cpu", "profile 'cpu' is for the cpu device"},
      {"cuda:0=1GiB=2GiB", "cap '1GiB=2GiB'"},
  };
  for (const BadList& c : cases) {
    const std::string error = test::error_of([&] { parse_devices(c.list); });
    EXPECT_THAT(error, HasSubstr(c.says)) << c.list;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    if (!c.list.empty() && c.list != "  ") {
      EXPECT_THAT(error, HasSubstr("device list '" + c.list + "'"));
    }
  }
}

TEST(DeviceList, AtMostSixtyFourEntries) {
  std::string list = "cpu=1GiB";
  for (int i = 1; i < 64; ++i) list += ",cpu=1GiB";
  EXPECT_EQ(parse_devices(list).size(), 64u);
  EXPECT_THAT(test::error_of([&] { parse_devices(list + ",cpu"); }), HasSubstr("entry 65 'cpu': more than 64 entries"));
}

TEST(Placement, Modes) {
  EXPECT_EQ(parse_placement("auto"), Placement::kAuto);
  EXPECT_EQ(parse_placement("pipeline"), Placement::kPipeline);
  EXPECT_EQ(parse_placement("replicas"), Placement::kReplicas);
  for (Placement p : {Placement::kAuto, Placement::kPipeline, Placement::kReplicas})
    EXPECT_EQ(parse_placement(placement_name(p)), p);
  EXPECT_EQ(test::error_of([] { parse_placement("balanced"); }),
            "unknown placement 'balanced' (use auto, pipeline or replicas)");
}

TEST(ByteSize, PrintsInTheLargestUnitThatKeepsANumberAboveOne) {
  using runtime::placement::format_bytes;
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(22 * kGiB + kGiB / 2), "22.5 GiB");
  EXPECT_EQ(format_bytes(3 * 1024 * kGiB), "3.0 TiB");
  // What it prints reads back as a cap.
  std::string why;
  EXPECT_EQ(runtime::placement::parse_byte_size(format_bytes(22 * kGiB + kGiB / 2), why), 22 * kGiB + kGiB / 2);
  EXPECT_EQ(runtime::placement::unit_for(5 * kGiB).name, std::string("GiB"));
  EXPECT_EQ(runtime::placement::unit_for(20 << 20).name, std::string("MiB"));
  EXPECT_EQ(runtime::placement::format_in(20 << 20, runtime::placement::unit_for(kGiB)), "0.0");
}

// A pipeline's step is split once per GPU that holds layers (stages sharing a card take turns on
// it) and once per CPU stage (threads of their own).
TEST(PipelineMicroBatches, OnePerGpuThatHoldsLayersAndPerCpuStage) {
  using runtime::placement::pipeline_micro_batches;
  EXPECT_EQ(pipeline_micro_batches({"cuda:0", "cuda:0"}), 1);
  EXPECT_EQ(pipeline_micro_batches({"cuda:0", "cuda:0", "cuda:0", "cuda:0"}), 1);
  EXPECT_EQ(pipeline_micro_batches({"cuda:0", "cuda:1", "cuda:0"}), 2);
  EXPECT_EQ(pipeline_micro_batches({"cuda:0", "cpu"}), 2);
  EXPECT_EQ(pipeline_micro_batches({"cpu", "cpu", "cpu"}), 3);
  EXPECT_EQ(pipeline_micro_batches({}), 1);
}

}  // namespace
}  // namespace qwenvl

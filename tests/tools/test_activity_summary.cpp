// tools/activity_summary.cpp: busy time as a union of intervals, the idle fraction of a window, and
// the decode phase of a synthetic trace laid out by hand (the figures below follow from its layout).
#include "activity_summary.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace qwenvl::tools {
namespace {

using Intervals = std::vector<Interval>;

TEST(BusyTime, DisjointIntervalsAdd) {
  EXPECT_EQ(busy_ns({{10, 20}, {30, 45}}, {0, 100}), 25u);
  EXPECT_DOUBLE_EQ(idle_fraction({{10, 20}, {30, 45}}, {0, 100}), 0.75);
}

TEST(BusyTime, OverlapsCountOnce) {
  EXPECT_EQ(busy_ns({{10, 30}, {20, 40}}, {0, 100}), 30u);
  EXPECT_EQ(busy_ns({{20, 40}, {10, 30}, {10, 30}}, {0, 100}), 30u);  // unsorted, duplicated
  EXPECT_EQ(busy_ns({{10, 20}, {20, 30}}, {0, 100}), 20u);             // touching
}

TEST(BusyTime, NestedIntervalsCountOnce) {
  EXPECT_EQ(busy_ns({{10, 50}, {20, 30}, {25, 45}}, {0, 100}), 40u);
  EXPECT_EQ(busy_ns({{20, 30}, {10, 50}}, {0, 100}), 40u);
}

TEST(BusyTime, EmptyListIsAllIdle) {
  EXPECT_EQ(busy_ns({}, {0, 100}), 0u);
  EXPECT_DOUBLE_EQ(idle_fraction({}, {0, 100}), 1.0);
}

TEST(BusyTime, IntervalsAreClippedToTheWindow) {
  // [0,15) gives 5 inside [10,100), [90,200) gives 10, [200,300) and [0,10) give nothing.
  EXPECT_EQ(busy_ns({{0, 15}, {90, 200}, {200, 300}, {0, 10}}, {10, 100}), 15u);
  EXPECT_EQ(busy_ns({{0, 1000}}, {10, 100}), 90u);
  EXPECT_DOUBLE_EQ(idle_fraction({{0, 1000}}, {10, 100}), 0.0);
  EXPECT_EQ(busy_ns({{0, 15}, {5, 12}}, {10, 100}), 5u);  // overlap before the window start
}

TEST(BusyTime, EmptyWindowHasNoIdleFraction) {
  EXPECT_EQ(busy_ns({{0, 15}}, {50, 50}), 0u);
  EXPECT_TRUE(std::isnan(idle_fraction({{0, 15}}, {50, 50})));
  EXPECT_TRUE(std::isnan(idle_fraction({}, {60, 50})));
}

TEST(BusyTime, MatchesCountingCoveredNanoseconds) {
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> at(0, 400), length(0, 60), count(0, 25);
  for (int trial = 0; trial < 200; ++trial) {
    Intervals intervals;
    for (int i = count(gen); i > 0; --i) {
      const uint64_t s = at(gen);
      intervals.push_back({s, s + static_cast<uint64_t>(length(gen))});
    }
    const uint64_t a = at(gen), b = at(gen);
    const Interval window{std::min(a, b), std::max(a, b)};
    uint64_t covered = 0;
    for (uint64_t t = window.start_ns; t < window.end_ns; ++t)
      for (const Interval& i : intervals)
        if (i.start_ns <= t && t < i.end_ns) {
          ++covered;
          break;
        }
    ASSERT_EQ(busy_ns(intervals, window), covered) << "trial " << trial;
  }
}

// Names as CUPTI gives them (mangled); the patterns are substrings of the identifiers.
const char* kDecode = "_ZN6qwenvl7kernels12_GLOBAL__N_119paged_decode_kernelIN3c108BFloat16ELi128ELi1EEEvNS1_12DecodeParamsE";
const char* kMerge = "_ZN6qwenvl7kernels12_GLOBAL__N_125paged_decode_merge_kernelIN3c108BFloat16ELi128EEEvNS1_12DecodeParamsE";
const char* kFlash = "_ZN6qwenvl7kernels12_GLOBAL__N_116flash_fwd_kernelINS1_6TraitsEEEvNS1_6ParamsE";

ActivityRecord kernel(uint64_t start, uint64_t end, uint32_t correlation, uint32_t graph, const std::string& name) {
  ActivityRecord r;
  r.kind = ActivityKind::kKernel;
  r.start_ns = start;
  r.end_ns = end;
  r.correlation_id = correlation;
  r.graph_id = graph;
  r.name = name;
  return r;
}

ActivityRecord copy(uint64_t start, uint64_t end, uint32_t correlation) {
  ActivityRecord r;
  r.kind = ActivityKind::kMemcpy;
  r.start_ns = start;
  r.end_ns = end;
  r.correlation_id = correlation;
  return r;
}

// One decode step as one graph launch (graph 7) at `base`: a projection, the attention and its
// merge, the head: [base, base + 50).
void add_step(std::vector<ActivityRecord>& trace, uint64_t base, uint32_t correlation) {
  trace.push_back(kernel(base, base + 10, correlation, 7, "gemm_qkv"));
  trace.push_back(kernel(base + 10, base + 30, correlation, 7, kDecode));
  trace.push_back(kernel(base + 30, base + 35, correlation, 7, kMerge));
  trace.push_back(kernel(base + 35, base + 50, correlation, 7, "lm_head_gemm"));
}

// Between steps: sampling, the token copy to the host, the next step's input copy.
void add_turn(std::vector<ActivityRecord>& trace, uint64_t after_step, uint32_t correlation) {
  trace.push_back(kernel(after_step + 10, after_step + 20, correlation, 0, "sample_kernel"));
  trace.push_back(copy(after_step + 20, after_step + 22, correlation + 1));
  trace.push_back(copy(after_step + 40, after_step + 41, correlation + 2));
}

std::vector<ActivityRecord> graph_trace() {
  std::vector<ActivityRecord> t;
  t.push_back(kernel(900, 950, 50, 0, kFlash));             // the first prefill: before the window
  t.push_back(kernel(960, 980, 60, 8, "other_graph_node"));  // a graph launch with no decode kernel
  add_step(t, 1000, 100);                                    // [1000, 1050)
  add_turn(t, 1050, 200);                                    // busy 10 + 2 + 1
  add_step(t, 1100, 101);                                    // [1100, 1150)
  add_turn(t, 1150, 210);                                    // busy 10 + 2 + 1
  t.push_back(kernel(1175, 1185, 300, 0, kFlash));           // a request admitted between steps:
  t.push_back(kernel(1180, 1195, 301, 0, "prefill_gemm"));   //   with the above, 20 busy (1175..1195)
  add_step(t, 1200, 102);                                    // [1200, 1250)
  t.push_back(kernel(1300, 1310, 400, 0, "after_the_run"));
  t.push_back(kernel(0, 0, 500, 7, kDecode));               // CUPTI could not time it: ignored
  return t;
}

TEST(DecodePhase, GraphLaunchesAreTheSteps) {
  const DecodePhase d = summarize_decode(graph_trace());
  ASSERT_TRUE(d.found());
  EXPECT_EQ(d.decode_kernels, 6u);  // attention + merge in each of 3 steps
  EXPECT_EQ(d.eager_decode_kernels, 0u);
  ASSERT_EQ(d.steps.size(), 3u);
  EXPECT_EQ(d.steps[0].start_ns, 1000u);  // the step starts with its first node, not its attention
  EXPECT_EQ(d.steps[0].end_ns, 1050u);    // and ends with its last
  EXPECT_EQ(d.steps[2].start_ns, 1200u);
  EXPECT_EQ(d.window.start_ns, 1000u);
  EXPECT_EQ(d.window.end_ns, 1250u);
  // 3 steps x 50, the first turn 13, the second 13 with the overlapping admission (1175..1195,
  // which covers its input copy at 1190) making it 10 + 2 + 20 = 32.
  EXPECT_EQ(d.busy_ns, 150u + 13u + 32u);
  EXPECT_DOUBLE_EQ(d.idle_fraction, 1.0 - 195.0 / 250.0);
  EXPECT_EQ(d.admission_kernels_in_window, 1u);
}

TEST(DecodePhase, SteadyCyclesSkipAdmissions) {
  const DecodePhase d = summarize_decode(graph_trace());
  // Cycles [1000,1100) and [1100,1200); the second holds the admitted request's prefill.
  EXPECT_EQ(d.steady_cycles, 1u);
  EXPECT_EQ(d.steady_ns, 100u);
  EXPECT_EQ(d.steady_busy_ns, 63u);
  EXPECT_DOUBLE_EQ(d.steady_idle_fraction, 0.37);
}

TEST(DecodePhase, SteadyIdleSplitsInsideAndBetweenSteps) {
  std::vector<ActivityRecord> t;
  for (uint32_t i = 0; i < 4; ++i) {  // steps every 100 ns: nodes [0, 10) and [15, 50), a 5 ns gap
    const uint64_t base = 1000 + 100 * i;
    t.push_back(kernel(base, base + 10, 100 + i, 7, "gemm_qkv"));
    t.push_back(kernel(base + 15, base + 50, 100 + i, 7, kDecode));
    t.push_back(kernel(base + 60, base + 70, 200 + i, 0, "sample_kernel"));  // the turn: 10 busy of 50
  }
  // The Hopper flash kernel is an admission too: the cycle it falls in is not steady.
  t.push_back(kernel(1275, 1285, 300, 0,
                     "_ZN6qwenvl7kernels12flash_hopper23flash_fwd_hopper_kernelINS1_6TraitsI13__nv_bfloat16Li128EEEEEvNS0_5flash6ParamsE"));
  const DecodePhase d = summarize_decode(t);
  ASSERT_EQ(d.steps.size(), 4u);
  EXPECT_EQ(d.steady_cycles, 2u);  // [1000, 1100) and [1100, 1200); [1200, 1300) holds the prefill
  EXPECT_EQ(d.steady_ns, 200u);
  EXPECT_EQ(d.steady_busy_ns, 2u * 55u);
  EXPECT_EQ(d.steady_idle_in_steps_ns, 2u * 5u);
  EXPECT_EQ(d.steady_idle_between_steps_ns, 2u * 40u);
  // Kernel time over the steady cycles, most first, names demangled.
  ASSERT_EQ(d.steady_kernel_ns.size(), 3u);
  EXPECT_NE(d.steady_kernel_ns[0].first.find("paged_decode_kernel"), std::string::npos);
  EXPECT_EQ(d.steady_kernel_ns[0].second, 2u * 35u);
  EXPECT_EQ(d.steady_kernel_ns[1].second, 2u * 10u);
  EXPECT_EQ(d.steady_kernel_ns[2].second, 2u * 10u);
  // The 5 ns gap of each steady step falls before the attention kernel; each step holds 2 nodes.
  ASSERT_EQ(d.steady_idle_before_ns.size(), 1u);
  EXPECT_NE(d.steady_idle_before_ns[0].first.find("paged_decode_kernel"), std::string::npos);
  EXPECT_EQ(d.steady_idle_before_ns[0].second, 2u * 5u);
  EXPECT_DOUBLE_EQ(d.steady_activities_per_step, 2.0);
}

TEST(DecodePhase, StepGapsAreChargedToTheActivityAfterThem) {
  std::vector<ActivityRecord> t;
  for (uint32_t i = 0; i < 3; ++i) {  // nodes [0, 10), copy [12, 20), [18, 30) overlapping it, [34, 40)
    const uint64_t base = 1000 + 100 * i;
    t.push_back(kernel(base, base + 10, 100 + i, 7, "rms_norm_kernel"));
    ActivityRecord copy = kernel(base + 12, base + 20, 100 + i, 7, "");
    copy.kind = ActivityKind::kMemcpy;
    t.push_back(copy);
    t.push_back(kernel(base + 18, base + 30, 100 + i, 7, kDecode));
    t.push_back(kernel(base + 34, base + 40, 100 + i, 7, "gemm"));
  }
  const DecodePhase d = summarize_decode(t);
  ASSERT_EQ(d.steady_cycles, 2u);
  EXPECT_EQ(d.steady_idle_in_steps_ns, 2u * (2u + 4u));
  ASSERT_EQ(d.steady_idle_before_ns.size(), 2u);  // the overlapping kernel starts no gap
  EXPECT_EQ(d.steady_idle_before_ns[0], (std::pair<std::string, uint64_t>{"gemm", 2u * 4u}));
  EXPECT_EQ(d.steady_idle_before_ns[1], (std::pair<std::string, uint64_t>{"memcpy", 2u * 2u}));
  EXPECT_DOUBLE_EQ(d.steady_activities_per_step, 4.0);
}

TEST(DecodePhase, WithoutGraphsTheWindowRunsFromFirstToLastDecodeKernel) {
  std::vector<ActivityRecord> t;
  t.push_back(kernel(90, 100, 1, 0, "gemm_before"));
  t.push_back(kernel(100, 110, 2, 0, kDecode));
  t.push_back(kernel(150, 160, 3, 0, "gemm_between"));
  t.push_back(kernel(200, 210, 4, 0, kDecode));
  t.push_back(kernel(210, 230, 5, 0, "gemm_after"));
  const DecodePhase d = summarize_decode(t);
  EXPECT_EQ(d.decode_kernels, 2u);
  EXPECT_EQ(d.eager_decode_kernels, 2u);
  EXPECT_TRUE(d.steps.empty());
  EXPECT_EQ(d.window.start_ns, 100u);
  EXPECT_EQ(d.window.end_ns, 210u);
  EXPECT_EQ(d.busy_ns, 30u);
  EXPECT_DOUBLE_EQ(d.idle_fraction, 1.0 - 30.0 / 110.0);
  EXPECT_EQ(d.steady_cycles, 0u);
  EXPECT_TRUE(std::isnan(d.steady_idle_fraction));
}

TEST(DecodePhase, NoDecodeKernelIsNotFound) {
  const std::vector<ActivityRecord> t = {kernel(0, 10, 1, 0, kFlash), copy(10, 20, 2)};
  const DecodePhase d = summarize_decode(t);
  EXPECT_FALSE(d.found());
  EXPECT_TRUE(d.steps.empty());
  EXPECT_TRUE(std::isnan(d.idle_fraction));
  EXPECT_FALSE(summarize_decode({}).found());
}

TEST(DecodePhase, PatternsAreConfigurable) {
  DecodePatterns patterns;
  patterns.decode = "gemm_between";
  patterns.admission.clear();
  std::vector<ActivityRecord> t = {kernel(100, 110, 2, 0, kDecode), kernel(150, 160, 3, 0, "gemm_between")};
  const DecodePhase d = summarize_decode(t, patterns);
  EXPECT_EQ(d.decode_kernels, 1u);
  EXPECT_EQ(d.window.start_ns, 150u);
  EXPECT_EQ(d.window.end_ns, 160u);
}

TEST(KernelNames, DemangleWhereTheyDemangle) {
  EXPECT_EQ(demangled("_Z3fooi"), "foo(int)");
  EXPECT_EQ(demangled("plain_name"), "plain_name");
  EXPECT_EQ(demangled("b"), "b");  // a C kernel's name, not the mangled type bool
}

TEST(KernelNames, MostFrequentFirst) {
  const std::vector<ActivityRecord> t = {kernel(0, 1, 1, 0, "b"), kernel(1, 2, 2, 0, "_Z3fooi"), kernel(2, 3, 3, 0, "b"),
                                         copy(3, 4, 4), kernel(4, 5, 5, 0, "a")};
  const std::vector<std::string> top = most_frequent_kernels(t, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0], "2 x b");
  EXPECT_EQ(top[1], "1 x foo(int)");  // ties by mangled name: "_Z3fooi" before "a"
}

}  // namespace
}  // namespace qwenvl::tools

#include "activity_summary.h"

#include <cxxabi.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <limits>
#include <map>

namespace qwenvl::tools {

uint64_t busy_ns(std::vector<Interval> intervals, Interval window) {
  if (window.end_ns <= window.start_ns) return 0;
  for (Interval& i : intervals) {
    i.start_ns = std::max(i.start_ns, window.start_ns);
    i.end_ns = std::min(i.end_ns, window.end_ns);
  }
  intervals.erase(std::remove_if(intervals.begin(), intervals.end(),
                                 [](const Interval& i) { return i.end_ns <= i.start_ns; }),
                  intervals.end());
  std::sort(intervals.begin(), intervals.end(),
            [](const Interval& a, const Interval& b) { return a.start_ns < b.start_ns; });
  // Sweep in start order: each interval adds only what lies past the covered frontier.
  uint64_t busy = 0, frontier = window.start_ns;
  for (const Interval& i : intervals) {
    if (i.end_ns <= frontier) continue;
    busy += i.end_ns - std::max(i.start_ns, frontier);
    frontier = i.end_ns;
  }
  return busy;
}

double idle_fraction(const std::vector<Interval>& intervals, Interval window) {
  if (window.end_ns <= window.start_ns) return std::numeric_limits<double>::quiet_NaN();
  const double length = static_cast<double>(window.end_ns - window.start_ns);
  return 1.0 - static_cast<double>(busy_ns(intervals, window)) / length;
}

namespace {

bool timed(const ActivityRecord& r) { return !(r.start_ns == 0 && r.end_ns == 0) && r.end_ns >= r.start_ns; }

bool overlaps(const Interval& a, const Interval& b) { return a.start_ns < b.end_ns && b.start_ns < a.end_ns; }

// Totals by demangled name, largest first (ties by name).
std::vector<std::pair<std::string, uint64_t>> by_readable_name(const std::map<std::string, uint64_t>& totals) {
  std::map<std::string, uint64_t> readable;
  for (const auto& [name, ns] : totals) readable[demangled(name)] += ns;
  std::vector<std::pair<std::string, uint64_t>> out(readable.begin(), readable.end());
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  return out;
}

}  // namespace

DecodePhase summarize_decode(const std::vector<ActivityRecord>& records, const DecodePatterns& patterns) {
  DecodePhase phase;
  phase.idle_fraction = std::numeric_limits<double>::quiet_NaN();
  phase.steady_idle_fraction = std::numeric_limits<double>::quiet_NaN();

  auto is_kernel_named = [](const ActivityRecord& r, const std::string& pattern) {
    return r.kind == ActivityKind::kKernel && !pattern.empty() && r.name.find(pattern) != std::string::npos;
  };
  auto is_admission = [&](const ActivityRecord& r) {
    return std::any_of(patterns.admission.begin(), patterns.admission.end(),
                       [&](const std::string& p) { return is_kernel_named(r, p); });
  };

  // Graph launches that hold a decode kernel: their correlation ids are the decode steps.
  std::map<uint32_t, Interval> launches;
  uint64_t lo = std::numeric_limits<uint64_t>::max(), hi = 0;
  for (const ActivityRecord& r : records) {
    if (!timed(r) || !is_kernel_named(r, patterns.decode)) continue;
    ++phase.decode_kernels;
    if (r.graph_id != 0) {
      launches.emplace(r.correlation_id, Interval{std::numeric_limits<uint64_t>::max(), 0});
    } else {
      ++phase.eager_decode_kernels;
      lo = std::min(lo, r.start_ns);
      hi = std::max(hi, r.end_ns);
    }
  }
  if (phase.decode_kernels == 0) return phase;

  // A step spans every activity of its launch, not only the attention kernels.
  for (const ActivityRecord& r : records) {
    if (!timed(r)) continue;
    auto it = launches.find(r.correlation_id);
    if (it == launches.end() || r.graph_id == 0) continue;
    it->second.start_ns = std::min(it->second.start_ns, r.start_ns);
    it->second.end_ns = std::max(it->second.end_ns, r.end_ns);
  }
  for (const auto& [id, span] : launches) {
    phase.steps.push_back(span);
    lo = std::min(lo, span.start_ns);
    hi = std::max(hi, span.end_ns);
  }
  std::sort(phase.steps.begin(), phase.steps.end(),
            [](const Interval& a, const Interval& b) { return a.start_ns < b.start_ns; });
  phase.window = Interval{lo, hi};

  std::vector<Interval> all;
  std::vector<Interval> admission;
  all.reserve(records.size());
  for (const ActivityRecord& r : records) {
    if (!timed(r)) continue;
    all.push_back(Interval{r.start_ns, r.end_ns});
    if (is_admission(r)) admission.push_back(Interval{r.start_ns, r.end_ns});
  }
  phase.busy_ns = busy_ns(all, phase.window);
  phase.idle_fraction = idle_fraction(all, phase.window);
  for (const Interval& a : admission)
    if (overlaps(a, phase.window)) ++phase.admission_kernels_in_window;

  std::vector<Interval> steady_cycles, steady_steps;  // a steady cycle, and its step clipped to it
  for (size_t i = 0; i + 1 < phase.steps.size(); ++i) {
    const Interval cycle{phase.steps[i].start_ns, phase.steps[i + 1].start_ns};
    if (cycle.end_ns <= cycle.start_ns) continue;
    if (std::any_of(admission.begin(), admission.end(), [&](const Interval& a) { return overlaps(a, cycle); }))
      continue;
    ++phase.steady_cycles;
    phase.steady_ns += cycle.end_ns - cycle.start_ns;
    const uint64_t busy = busy_ns(all, cycle);
    phase.steady_busy_ns += busy;
    // The step's own span (clipped to the cycle) against the rest of the cycle.
    const Interval step{cycle.start_ns, std::min(phase.steps[i].end_ns, cycle.end_ns)};
    const uint64_t step_busy = busy_ns(all, step);
    phase.steady_idle_in_steps_ns += (step.end_ns - step.start_ns) - step_busy;
    phase.steady_idle_between_steps_ns += ((cycle.end_ns - cycle.start_ns) - busy) - ((step.end_ns - step.start_ns) - step_busy);
    steady_cycles.push_back(cycle);
    steady_steps.push_back(step);
  }
  if (phase.steady_ns > 0)
    phase.steady_idle_fraction = 1.0 - static_cast<double>(phase.steady_busy_ns) / static_cast<double>(phase.steady_ns);

  // Inside each steady cycle's step: walk its activities in start order; a start past the covered
  // frontier is a gap, charged to that activity.
  std::map<std::string, uint64_t> gaps;
  size_t step_activities = 0;
  for (const Interval& step : steady_steps) {
    std::vector<const ActivityRecord*> inside;
    for (const ActivityRecord& r : records)
      if (timed(r) && r.start_ns >= step.start_ns && r.start_ns < step.end_ns) inside.push_back(&r);
    std::sort(inside.begin(), inside.end(), [](const ActivityRecord* a, const ActivityRecord* b) {
      return a->start_ns < b->start_ns;
    });
    step_activities += inside.size();
    uint64_t frontier = step.start_ns;
    for (const ActivityRecord* r : inside) {
      if (r->start_ns > frontier)
        gaps[r->kind == ActivityKind::kKernel ? r->name : r->kind == ActivityKind::kMemcpy ? "memcpy" : "memset"] +=
            r->start_ns - frontier;
      frontier = std::max(frontier, std::min(r->end_ns, step.end_ns));
    }
  }
  if (!steady_cycles.empty())
    phase.steady_activities_per_step = static_cast<double>(step_activities) / static_cast<double>(steady_cycles.size());
  phase.steady_idle_before_ns = by_readable_name(gaps);

  // Kernel time by name over the steady cycles (a kernel counts where it starts).
  std::map<std::string, uint64_t> by_name;
  for (const ActivityRecord& r : records) {
    if (!timed(r) || r.kind != ActivityKind::kKernel) continue;
    for (const Interval& c : steady_cycles)
      if (r.start_ns >= c.start_ns && r.start_ns < c.end_ns) {
        by_name[r.name] += r.end_ns - r.start_ns;
        break;
      }
  }
  phase.steady_kernel_ns = by_readable_name(by_name);
  return phase;
}

std::string demangled(const std::string& name) {
  if (name.rfind("_Z", 0) != 0) return name;  // a plain C name ("b" would demangle as the type bool)
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> readable(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status),
                                                  std::free);
  return status == 0 && readable ? std::string(readable.get()) : name;
}

std::vector<std::string> most_frequent_kernels(const std::vector<ActivityRecord>& records, size_t limit) {
  std::map<std::string, size_t> counts;
  for (const ActivityRecord& r : records)
    if (r.kind == ActivityKind::kKernel) ++counts[r.name];
  std::vector<std::pair<size_t, std::string>> order;
  for (const auto& [name, count] : counts) order.emplace_back(count, name);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<std::string> out;
  for (size_t i = 0; i < order.size() && i < limit; ++i)
    out.push_back(std::to_string(order[i].first) + " x " + demangled(order[i].second));
  return out;
}

}  // namespace qwenvl::tools

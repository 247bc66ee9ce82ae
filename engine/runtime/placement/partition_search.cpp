#include "runtime/placement/partition_search.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <string>

#include "runtime/placement/device_list.h"

namespace qwenvl::runtime::placement {
namespace {

constexpr double kNever = std::numeric_limits<double>::infinity();

// The search evaluates about (devices + 1) x devices x layers^2 placements of a range (~50 ns each):
// real models (at most ~128 layers, 16 GPUs) take milliseconds; past this a hostile config.json with
// a long device list would take minutes, and is refused instead.
constexpr double kMostEvaluations = 4e8;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

PartitionSearch::PartitionSearch(const ModelParts& parts, const Workload& workload,
                                 const std::vector<DeviceEntry>& entries)
    : parts_(parts), w_(workload), entries_(entries), memory_(parts, workload), time_(parts, workload) {}

std::string PartitionSearch::structural_problem() const {
  const size_t layers = parts_.layers.size();
  const double k = static_cast<double>(entries_.size()), n = static_cast<double>(layers);
  if ((k + 1) * k * n * n > kMostEvaluations)
    return fmt::format("{} devices for a model of {} decoder layers are more than the planner searches exhaustively", k,
                       n);
  if (entries_.size() <= layers + 1) return {};
  return fmt::format(
      "{} devices for a model of {} decoder layers: a pipeline gives each device at least one layer, "
      "or the vision tower alone, so at most {} devices",
      entries_.size(), layers, layers + 1);
}

double PartitionSearch::best_chain(const std::vector<size_t>& chain, bool place_vision, int64_t rows,
                                   const Objective& objective, std::vector<StageRoles>& roles) const {
  const int64_t n = static_cast<int64_t>(parts_.layers.size());
  const int64_t k = static_cast<int64_t>(chain.size());
  if (k == 0 || k > n) return kNever;
  // worst[i][j][v]: the least worst cost of the first i chain entries holding layers [0, j), with the
  // vision tower among them (v = 1) or not; from[...]: where entry i's range starts, and whether it
  // runs the vision tower.
  const int64_t vs = place_vision ? 2 : 1;
  auto at = [&](int64_t i, int64_t j, int64_t v) { return (i * (n + 1) + j) * vs + v; };
  std::vector<double> worst(static_cast<size_t>((k + 1) * (n + 1) * vs), kNever);
  std::vector<int64_t> from(worst.size(), -1);
  std::vector<char> took_vision(worst.size(), 0);
  worst[at(0, 0, 0)] = -kNever;
  for (int64_t i = 1; i <= k; ++i) {
    // Entry i takes [a, j): every entry before it at least one layer, every entry after it too.
    for (int64_t j = i; j <= n - (k - i); ++j) {
      for (int64_t a = i - 1; a < j; ++a) {
        StageRoles r{a, j, a == 0, j == n, false};
        const double plain = objective(chain[i - 1], r, rows);
        for (int64_t v = 0; v < vs; ++v) {
          const double before = worst[at(i - 1, a, v)];
          if (before == kNever) continue;
          const double cost = std::max(before, plain);
          if (cost < worst[at(i, j, v)]) {
            worst[at(i, j, v)] = cost;
            from[at(i, j, v)] = a;
            took_vision[at(i, j, v)] = 0;
          }
        }
        if (place_vision && worst[at(i - 1, a, 0)] != kNever) {
          r.vision = true;
          const double cost = std::max(worst[at(i - 1, a, 0)], objective(chain[i - 1], r, rows));
          if (cost < worst[at(i, j, 1)]) {
            worst[at(i, j, 1)] = cost;
            from[at(i, j, 1)] = a;
            took_vision[at(i, j, 1)] = 1;
          }
        }
      }
    }
  }
  const int64_t v_end = place_vision ? 1 : 0;
  const double best = worst[at(k, n, v_end)];
  if (best == kNever) return kNever;
  for (int64_t i = k, j = n, v = v_end; i > 0; --i) {
    const int64_t a = from[at(i, j, v)];
    const bool vision = took_vision[at(i, j, v)] != 0;
    roles[chain[i - 1]] = StageRoles{a, j, a == 0, j == n, vision};
    if (vision) v = 0;
    j = a;
  }
  return best;
}

std::optional<Candidate> PartitionSearch::best_pipeline(const Objective& objective, bool per_cycle) const {
  if (!structural_problem().empty()) return std::nullopt;
  const size_t k = entries_.size();
  std::optional<Candidate> best;
  double best_cost = kNever;
  auto consider = [&](const std::vector<size_t>& chain, std::optional<size_t> vision_alone) {
    Candidate c;
    std::vector<std::string> stage_devices;
    for (size_t e : chain) stage_devices.push_back(entries_[e].spec.device);
    c.micro_batches = pipeline_micro_batches(stage_devices);
    c.rows = ceil_div(w_.max_batch, c.micro_batches);
    c.roles.assign(k, StageRoles{});
    double cost = best_chain(chain, !vision_alone, c.rows, objective, c.roles);
    if (vision_alone) {
      StageRoles alone;
      alone.vision = true;
      c.roles[*vision_alone] = alone;
      cost = std::max(cost, objective(*vision_alone, alone, c.rows));
    }
    // Times compare per cycle: every micro-batch passes the slowest stage once.
    if (per_cycle) cost *= c.micro_batches;
    if (cost < best_cost) {
      best_cost = cost;
      best = c;
    }
  };
  std::vector<size_t> all(k);
  for (size_t i = 0; i < k; ++i) all[i] = i;
  consider(all, std::nullopt);
  // The vision tower on a device of its own; removing either of two neighbouring identical entries
  // leaves the same chain, so only the first of such a run is tried.
  for (size_t d = 0; k > 1 && d < k; ++d) {
    const DeviceEntry& e = entries_[d];
    if (d > 0 && e.spec.device == entries_[d - 1].spec.device && e.budget == entries_[d - 1].budget) continue;
    std::vector<size_t> chain;
    for (size_t i = 0; i < k; ++i)
      if (i != d) chain.push_back(i);
    consider(chain, d);
  }
  return best;
}

std::optional<Candidate> PartitionSearch::fastest_pipeline() const {
  return best_pipeline(
      [this](size_t entry, const StageRoles& roles, int64_t rows) {
        const DeviceEntry& e = entries_[entry];
        if (memory_.stage(roles, e.target, rows).total() > e.budget) return kNever;
        return time_.stage(roles, e.rates, rows).step;
      },
      true);
}

std::optional<Candidate> PartitionSearch::least_short_pipeline() const {
  return best_pipeline(
      [this](size_t entry, const StageRoles& roles, int64_t rows) {
        const DeviceEntry& e = entries_[entry];
        return static_cast<double>(memory_.stage(roles, e.target, rows).total() - e.budget);
      },
      false);
}

Candidate PartitionSearch::replicas() const {
  Candidate c;
  c.mode = Placement::kReplicas;
  c.rows = w_.max_batch;
  const int64_t n = static_cast<int64_t>(parts_.layers.size());
  c.roles.assign(entries_.size(), StageRoles{0, n, true, true, true});
  return c;
}

MemoryEstimate PartitionSearch::memory(const Candidate& c, size_t entry) const {
  return memory_.stage(c.roles[entry], entries_[entry].target, c.rows);
}

StageTimes PartitionSearch::times(const Candidate& c, size_t entry) const {
  return time_.stage(c.roles[entry], entries_[entry].rates, c.rows);
}

bool PartitionSearch::fits(const Candidate& c) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (memory(c, i).total() > entries_[i].budget) return false;
  return true;
}

double PartitionSearch::tokens_per_second(const Candidate& c) const {
  const double batch = static_cast<double>(w_.max_batch);
  if (c.mode == Placement::kReplicas) {
    double total = 0;
    for (size_t i = 0; i < entries_.size(); ++i) total += batch / times(c, i).step;
    return total;
  }
  double slowest = 0;
  for (size_t i = 0; i < entries_.size(); ++i) slowest = std::max(slowest, times(c, i).step);
  return batch / (c.micro_batches * slowest);
}

}  // namespace qwenvl::runtime::placement

#include "runtime/placement/device_profile.h"

#include <fmt/format.h>

#include <array>

#include "qwenvl/error.h"

namespace qwenvl::runtime::placement {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr double kTera = 1e12;

// Measured on this project's H100 (docs/BENCHMARK-METHOD.md, "Kernels and ceilings"): a 2 GiB bf16
// device-to-device copy moves 3.02 TB/s of the datasheet's 3.35 (0.90); an 8192^3 bf16 matmul
// reaches 684-798 TFLOP/s of 989.4 (0.69-0.81, the middle taken); our flash attention reaches up to
// 650 TFLOP/s (kernels/NOTES.md), within that range.
constexpr double kHopperFlopsEfficiency = 0.75;
constexpr double kHopperBandwidthEfficiency = 0.90;

constexpr std::array<DeviceProfile, 3> kProfiles = {{
    {"h100", "NVIDIA H100 SXM5 80GB", true,
     // nvidia-smi's memory.total on an H100 80GB HBM3 (80 GiB less what the driver keeps for itself)
     81559 * kMiB, 989.4 * kTera, 66.9 * kTera, 3.35 * kTera, kHopperFlopsEfficiency, kHopperBandwidthEfficiency, 132,
     "NVIDIA H100 datasheet (SXM5: 989.4 TFLOP/s dense bf16, 66.9 TFLOP/s fp32, 3.35 TB/s HBM3, 132 SMs); "
     "efficiencies measured on this project's H100 (docs/BENCHMARK-METHOD.md)"},
    {"h200", "NVIDIA H200 SXM 141GB", true,
     // nvidia-smi's memory.total on an H200 (141 GB HBM3e)
     143771 * kMiB, 989.4 * kTera, 66.9 * kTera, 4.8 * kTera, kHopperFlopsEfficiency, kHopperBandwidthEfficiency, 132,
     "NVIDIA H200 datasheet (SXM: the H100's compute, 4.8 TB/s HBM3e, 141 GB); efficiencies taken from the H100's "
     "(not yet measured on an H200)"},
    {"cpu", "one socket of a current server CPU (AMD EPYC 9654, 96 cores)", false, 0,
     // 96 cores x 2.4 GHz x 32 fp32 FLOP per cycle (two 256-bit FMA pipes); libtorch computes bf16 in fp32
     7.37 * kTera, 7.37 * kTera,
     // 12 channels of DDR5-4800 x 8 bytes
     460.8e9,
     // assumed, not measured: libtorch's CPU GEMMs and the reference attention reach about half the
     // peak; STREAM triad reaches about 0.7-0.8 of DDR5's
     0.5, 0.7, 0,
     "AMD EPYC 9654 specifications (96 Zen 4 cores at 2.4 GHz, 12 x DDR5-4800); efficiencies assumed; the host's "
     "memory is read from /proc/meminfo"},
}};

}  // namespace

const DeviceProfile& find_profile(const std::string& name) {
  for (const DeviceProfile& p : kProfiles)
    if (name == p.name) return p;
  throw Error(fmt::format("unknown device profile '{}' (known: {})", name, profile_names()));
}

const DeviceProfile& default_profile(bool cuda) { return find_profile(cuda ? "h100" : "cpu"); }

std::string profile_names() {
  std::string names;
  for (const DeviceProfile& p : kProfiles) names += (names.empty() ? "" : ", ") + std::string(p.name);
  return names;
}

}  // namespace qwenvl::runtime::placement

// Named device profiles: the rates and memory the planner assumes for a device it has not measured
// (a laptop planning for a GPU host; measured rates replace them later through DeviceFacts). Each
// number says where it comes from.
#pragma once

#include <cstdint>
#include <string>

namespace qwenvl::runtime::placement {

struct DeviceProfile {
  const char* name;         // as written in a device list: "h100"
  const char* description;  // the part the numbers are for
  bool cuda;
  int64_t memory_bytes;         // what the driver reports as the card's total; 0 for the host (measured)
  double half_flops;            // dense bf16 / fp16 peak, FLOP/s
  double float_flops;           // fp32 peak, FLOP/s
  double bandwidth;             // memory bandwidth peak, bytes/s
  double flops_efficiency;      // the share of the FLOP peak that GEMMs and attention reach
  double bandwidth_efficiency;  // the share of the bandwidth peak that streaming kernels reach
  int sm_count;                 // streaming multiprocessors (decode attention sizes its splits by them); 0 on the host
  const char* source;           // where the numbers come from
};

// The profile of that name; throws Error listing the known ones.
const DeviceProfile& find_profile(const std::string& name);
// h100 for cuda, cpu for the host.
const DeviceProfile& default_profile(bool cuda);
// "h100, h200, cpu".
std::string profile_names();

}  // namespace qwenvl::runtime::placement

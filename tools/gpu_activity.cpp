#include "gpu_activity.h"

#include <cuda_runtime_api.h>
#include <cupti.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "qwenvl/error.h"

#if !defined(CUPTI_API_VERSION) || CUPTI_API_VERSION < 130000
#error "tools/gpu_activity.cpp reads the CUDA 13 activity records (CUpti_ActivityKernel10, Memcpy6, Memset4)"
#endif

namespace qwenvl::tools {
namespace {

// CUPTI's record queue is process-wide; its callbacks find the recording instance here.
std::atomic<GpuActivity*> active{nullptr};
std::mutex take_mutex;

constexpr size_t kBufferBytes = 16u << 20;  // a batch-64 run's trace is a few MB

std::string cupti_reason(CUptiResult result) {
  const char* name = nullptr;
  const char* message = nullptr;
  if (cuptiGetResultString(result, &name) != CUPTI_SUCCESS) name = nullptr;
  if (cuptiGetErrorMessage(result, &message) != CUPTI_SUCCESS) message = nullptr;
  std::string reason = name ? name : ("CUPTI error " + std::to_string(static_cast<int>(result)));
  if (message && *message) reason += std::string(" (") + message + ")";
  switch (result) {
    case CUPTI_ERROR_INSUFFICIENT_PRIVILEGES:
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_INSUFFICIENT_PRIVILEGES:
      reason += ": insufficient privileges to profile this GPU (see "
                "https://developer.nvidia.com/CUPTI_ERROR_INSUFFICIENT_PRIVILEGES)";
      break;
    case CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED:
      reason += ": another profiler (Nsight Systems / Compute, cuda-gdb, torch.profiler) already holds CUPTI";
      break;
    case CUPTI_ERROR_MIG_DEVICE_NOT_SUPPORTED:
      reason += ": CUPTI cannot trace a MIG instance";
      break;
    default:
      break;
  }
  return reason;
}

void check(CUptiResult result, const char* call) {
  if (result != CUPTI_SUCCESS) throw Error(std::string("GPU activity profile: ") + call + " failed: " + cupti_reason(result));
}

void check_cuda(cudaError_t result, const char* call) {
  if (result != cudaSuccess)
    throw Error(std::string("GPU activity profile: ") + call + " failed: " + cudaGetErrorString(result));
}

constexpr CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                         CUPTI_ACTIVITY_KIND_MEMSET};


// The fields every timed CUPTI record (kernel, memcpy, memset) shares.
template <typename CuptiRecord>
ActivityRecord timed_record(ActivityKind kind, const CuptiRecord& r) {
  ActivityRecord out;
  out.kind = kind;
  out.start_ns = r.start;
  out.end_ns = r.end;
  out.correlation_id = r.correlationId;
  out.graph_id = r.graphId;
  out.stream_id = r.streamId;
  return out;
}

}  // namespace

// The two C callbacks CUPTI calls, on its own thread or inside cuptiActivityFlushAll.
struct GpuActivityCallbacks {
  static void CUPTIAPI requested(uint8_t** buffer, size_t* size, size_t* max_records) {
    *buffer = static_cast<uint8_t*>(std::aligned_alloc(ACTIVITY_RECORD_ALIGNMENT, kBufferBytes));
    *size = *buffer ? kBufferBytes : 0;  // no buffer: CUPTI drops records and counts them
    *max_records = 0;                    // as many as fit
  }

  static void CUPTIAPI completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid_bytes) {
    {
      std::lock_guard<std::mutex> lock(take_mutex);
      if (GpuActivity* a = active.load()) a->take_buffer(buffer, valid_bytes);
    }
    std::free(buffer);
  }
};

GpuActivity::GpuActivity(int device) : device_(device) {
  GpuActivity* expected = nullptr;
  if (!active.compare_exchange_strong(expected, this))
    throw Error("GPU activity profile: only one GpuActivity at a time (CUPTI is process-wide)");
  try {
    uint32_t version = 0;
    check(cuptiGetVersion(&version), "cuptiGetVersion");
    if (version != CUPTI_API_VERSION)
      std::fprintf(stderr, "GPU activity profile: built against CUPTI API %d, loaded %u\n", CUPTI_API_VERSION, version);
    check(cuptiActivityRegisterCallbacks(&GpuActivityCallbacks::requested, &GpuActivityCallbacks::completed),
          "cuptiActivityRegisterCallbacks");
  } catch (...) {
    active.store(nullptr);
    throw;
  }
}

GpuActivity::~GpuActivity() {
  if (recording_) {
    for (CUpti_ActivityKind kind : kKinds) cuptiActivityDisable(kind);
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  }
  std::lock_guard<std::mutex> lock(take_mutex);
  active.store(nullptr);
}

void GpuActivity::start() {
  if (recording_) throw Error("GPU activity profile: start() while already recording");
  {
    std::lock_guard<std::mutex> lock(take_mutex);
    records_.clear();
    dropped_ = untimed_ = other_ = buffers_ = 0;
    accepting_ = true;
  }
  // Finish the device's queued work first, so that the trace holds only what follows.
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  size_t stale = 0;
  check(cuptiActivityGetNumDroppedRecords(nullptr, 0, &stale), "cuptiActivityGetNumDroppedRecords");  // resets it
  for (CUpti_ActivityKind kind : kKinds) {
    const CUptiResult r = cuptiActivityEnable(kind);
    if (r != CUPTI_SUCCESS) {
      for (CUpti_ActivityKind k : kKinds) cuptiActivityDisable(k);
      check(r, "cuptiActivityEnable");
    }
  }
  recording_ = true;
}

void GpuActivity::stop() {
  if (!recording_) throw Error("GPU activity profile: stop() without start()");
  // Flushing does not wait for the GPU: records of unfinished work would lack their end time.
  cudaError_t synced = cudaSetDevice(device_);
  if (synced == cudaSuccess) synced = cudaDeviceSynchronize();
  for (CUpti_ActivityKind kind : kKinds) check(cuptiActivityDisable(kind), "cuptiActivityDisable");
  recording_ = false;
  check(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
  check_cuda(synced, "cudaDeviceSynchronize");
  size_t dropped = 0;
  check(cuptiActivityGetNumDroppedRecords(nullptr, 0, &dropped), "cuptiActivityGetNumDroppedRecords");
  std::lock_guard<std::mutex> lock(take_mutex);
  dropped_ += dropped;
  accepting_ = false;  // records() is the caller's now: a late buffer must not grow it
}

// Called with take_mutex held.
void GpuActivity::take_buffer(uint8_t* buffer, size_t valid_bytes) {
  if (!accepting_) return;
  ++buffers_;
  CUpti_Activity* record = nullptr;
  while (true) {
    const CUptiResult r = cuptiActivityGetNextRecord(buffer, valid_bytes, &record);
    if (r == CUPTI_ERROR_MAX_LIMIT_REACHED) break;  // end of the buffer
    if (r != CUPTI_SUCCESS) {                      // an incomplete or invalid record ends the buffer
      std::fprintf(stderr, "GPU activity profile: buffer cut short: %s\n", cupti_reason(r).c_str());
      break;
    }
    ActivityRecord out;
    switch (record->kind) {
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
      case CUPTI_ACTIVITY_KIND_KERNEL: {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
        out = timed_record(ActivityKind::kKernel, *k);
        if (k->name) out.name = k->name;
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        out = timed_record(ActivityKind::kMemcpy, *reinterpret_cast<const CUpti_ActivityMemcpy6*>(record));
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        out = timed_record(ActivityKind::kMemset, *reinterpret_cast<const CUpti_ActivityMemset4*>(record));
        break;
      }
      default:
        ++other_;
        continue;
    }
    if (out.start_ns == 0 && out.end_ns == 0) ++untimed_;
    records_.push_back(std::move(out));
  }
}

}  // namespace qwenvl::tools

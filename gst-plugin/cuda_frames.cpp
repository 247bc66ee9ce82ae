#include "cuda_frames.h"

#include <cstdlib>
#include <string>

#ifdef QWENVL_HAVE_GST_CUDA
#define GST_USE_UNSTABLE_API  // GStreamer's CUDA library says its API may change; 1.22's is what this uses
#include <dlfcn.h>
#include <gst/cuda/gstcudacontext.h>
#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudamemory.h>
#include <gst/cuda/gstcudautils.h>
#endif

GST_DEBUG_CATEGORY_EXTERN(gst_qwenvl_debug);
#define GST_CAT_DEFAULT gst_qwenvl_debug

namespace qwenvl::gst {

int single_cuda_device(const std::string& device, const std::string& devices) {
  const std::string& one = devices.empty() ? device : devices;
  if (one == "cuda") return 0;
  if (one.rfind("cuda:", 0) != 0) return -1;
  const std::string index = one.substr(5);
  if (index.empty() || index.find_first_not_of("0123456789") != std::string::npos) return -1;  // a list or a cap
  return std::atoi(index.c_str());
}

#ifdef QWENVL_HAVE_GST_CUDA

bool built_with_gst_cuda() { return true; }

namespace {

using PrimaryCtxRetain = CUresult (*)(CUcontext*, CUdevice);
using PrimaryCtxRelease = CUresult (*)(CUdevice);

class GstCudaFrames final : public CudaFrames {
 public:
  GstCudaFrames(GstCudaContext* context, CUcontext primary, CUdevice device, int index, PrimaryCtxRelease release)
      : context_(context), primary_(primary), device_(device), index_(index), release_(release) {}
  ~GstCudaFrames() override {
    gst_object_unref(context_);
    release_(device_);
  }

  bool answer_context_query(GstElement* element, GstQuery* query) override {
    return gst_cuda_handle_context_query(element, query, context_) != FALSE;
  }

  void post_context(GstElement* element) override {
    gst_element_post_message(element, gst_message_new_have_context(GST_OBJECT(element), gst_context_new_cuda_context(context_)));
  }

  std::optional<FrameView> view(GstBuffer* buffer, const GstVideoInfo& info, PixelFormat format,
                                std::string* why) override {
    GstMemory* memory = gst_buffer_n_memory(buffer) == 1 ? gst_buffer_peek_memory(buffer, 0) : nullptr;
    if (memory == nullptr || !gst_is_cuda_memory(memory)) {
      *why = "the buffer's memory is not one CUDA memory";
      return std::nullopt;
    }
    GstCudaMemory* cuda = GST_CUDA_MEMORY_CAST(memory);
    if (gst_cuda_context_get_handle(cuda->context) != primary_) {
      *why = "upstream allocated it in a CUDA context of its own, not the one qwenvl shares (an application set "
             "another GstCudaContext on the pipeline, or the element before qwenvl does not ask for one)";
      return std::nullopt;
    }
    if (GST_VIDEO_INFO_WIDTH(&cuda->info) != GST_VIDEO_INFO_WIDTH(&info) ||
        GST_VIDEO_INFO_HEIGHT(&cuda->info) != GST_VIDEO_INFO_HEIGHT(&info) ||
        GST_VIDEO_INFO_FORMAT(&cuda->info) != GST_VIDEO_INFO_FORMAT(&info)) {
      *why = "the CUDA memory's layout is not the caps'";
      return std::nullopt;
    }
    // Mapped for the GPU: 1.22 uploads a host-side write first (synchronously) and hands back the
    // device pointer; its CUDA elements have finished writing (their stream synchronised) before they
    // push, and the memory carries no stream to wait on (GStreamer 1.24 adds one).
    // Held through a buffer of its own that shares the memory, not through `buffer`: the element
    // still writes into `buffer` (metas of earlier answers) after handing the frame over, which a
    // second reference would forbid. Memory shared at that moment is not written in place by
    // anyone (a writer copies it), and the pool, given the buffer back while the engine still reads,
    // lets that buffer go instead of reusing it.
    struct Mapped {
      GstBuffer* holder;
      GstMemory* memory;
      GstMapInfo map;
    };
    GstBuffer* holder = gst_buffer_new();
    gst_buffer_append_memory(holder, gst_memory_ref(memory));
    auto mapped = std::make_shared<Mapped>(Mapped{holder, memory, GstMapInfo{}});
    if (!gst_memory_map(memory, &mapped->map, static_cast<GstMapFlags>(GST_MAP_READ | GST_MAP_CUDA))) {
      gst_buffer_unref(holder);
      *why = "GStreamer could not map the CUDA memory for the GPU";
      return std::nullopt;
    }
    FrameView view;
    view.format = format;
    view.width = GST_VIDEO_INFO_WIDTH(&info);
    view.height = GST_VIDEO_INFO_HEIGHT(&info);
    const auto* base = static_cast<const uint8_t*>(mapped->map.data);
    for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&cuda->info) && p < 3; ++p) {
      view.planes[p] = base + GST_VIDEO_INFO_PLANE_OFFSET(&cuda->info, p);
      view.strides[p] = GST_VIDEO_INFO_PLANE_STRIDE(&cuda->info, p);
    }
    view.memory = FrameMemory::kCuda;
    view.cuda_device = index_;
    // Held by the engine until it has read the planes (on its preparation thread): then unmapped
    // and let go.
    view.keep_alive = release_callback([mapped] {
      gst_memory_unmap(mapped->memory, &mapped->map);
      gst_buffer_unref(mapped->holder);
    });
    return view;
  }

 private:
  GstCudaContext* context_;
  CUcontext primary_;
  CUdevice device_;
  int index_;
  PrimaryCtxRelease release_;
};

}  // namespace

std::unique_ptr<CudaFrames> CudaFrames::create(int device, std::string* why) {
  if (!gst_cuda_load_library()) {
    *why = "GStreamer's CUDA library could not load the CUDA driver (libcuda.so.1)";
    return nullptr;
  }
  gst_cuda_memory_init_once();
  // The primary context is the runtime API's (libtorch's): the driver library the engine already
  // loaded, asked by name (GStreamer's loader does not wrap these two calls).
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  auto retain = driver ? reinterpret_cast<PrimaryCtxRetain>(dlsym(driver, "cuDevicePrimaryCtxRetain")) : nullptr;
  auto release = driver ? reinterpret_cast<PrimaryCtxRelease>(dlsym(driver, "cuDevicePrimaryCtxRelease_v2")) : nullptr;
  if (retain == nullptr || release == nullptr) {
    *why = "the CUDA driver (libcuda.so.1) has no primary-context calls";
    return nullptr;
  }
  CUdevice handle = 0;
  CUcontext primary = nullptr;
  if (CuInit(0) != CUDA_SUCCESS || CuDeviceGet(&handle, device) != CUDA_SUCCESS || retain(&primary, handle) != CUDA_SUCCESS) {
    *why = "the CUDA driver refused cuda:" + std::to_string(device);
    return nullptr;
  }
  GstCudaContext* context = gst_cuda_context_new_wrapped(primary, handle);
  if (context == nullptr) {
    release(handle);
    *why = "GStreamer could not wrap cuda:" + std::to_string(device) + "'s primary context";
    return nullptr;
  }
  return std::make_unique<GstCudaFrames>(context, primary, handle, device, release);
}

#else

bool built_with_gst_cuda() { return false; }

std::unique_ptr<CudaFrames> CudaFrames::create(int, std::string* why) {
  *why = "this qwenvl was built without GStreamer's CUDA library (libgstreamer-plugins-bad1.0-dev)";
  return nullptr;
}

#endif

}  // namespace qwenvl::gst

// Frames in GStreamer's CUDA memory (caps video/x-raw(memory:CUDAMemory), from cudaupload,
// nvh264dec and the other CUDA elements of gst-plugins-bad) handed to the engine where they lie.
// GStreamer 1.22's CUDA elements allocate in a CUDA context of their own (cuCtxCreate), whose memory
// the engine's kernels (libtorch's primary context) cannot read; so the element makes a
// GstCudaContext that wraps the primary context of the engine's device and gives it to upstream
// CUDA elements through GStreamer's context query, and they then allocate where the engine reads.
// A frame in any other context, or in a layout the engine does not take, goes through host memory
// as before (GStreamer downloads it when mapped), with the reason logged once.
// Built with GStreamer's CUDA library only (QWENVL_HAVE_GST_CUDA); without it create() says so.
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include <memory>
#include <optional>
#include <string>

#include "qwenvl/engine.h"

namespace qwenvl::gst {

// Whether this build of the element takes CUDA memory at all.
bool built_with_gst_cuda();

// The CUDA device index of an engine that prepares frames on one CUDA device ("cuda", "cuda:N", a
// device list of one such entry without a cap); -1 for anything else (the CPU, several devices).
int single_cuda_device(const std::string& device, const std::string& devices);

class CudaFrames {
 public:
  // For CUDA device `device`; nullptr and *why when GStreamer's CUDA library or the driver is missing.
  static std::unique_ptr<CudaFrames> create(int device, std::string* why);
  virtual ~CudaFrames() = default;

  // Answers a GST_QUERY_CONTEXT for GStreamer's CUDA context with this element's; false for others.
  virtual bool answer_context_query(GstElement* element, GstQuery* query) = 0;

  // Posts the context on the bus (GST_MESSAGE_HAVE_CONTEXT): the pipeline keeps it and hands it to
  // CUDA elements that ask for one before they are linked to this element (a decoder that
  // decodebin or uridecodebin makes) through their GST_MESSAGE_NEED_CONTEXT.
  virtual void post_context(GstElement* element) = 0;

  // The frame of `buffer` (caps `info`) as the engine reads it in place: device planes and strides,
  // `format`, and a keep_alive that holds its memory mapped for the GPU until the engine lets go
  // (`buffer` itself stays writable).
  // nullopt, with *why, when its memory is not readable there (not CUDA memory, another context).
  virtual std::optional<FrameView> view(GstBuffer* buffer, const GstVideoInfo& info, PixelFormat format,
                                        std::string* why) = 0;
};

}  // namespace qwenvl::gst

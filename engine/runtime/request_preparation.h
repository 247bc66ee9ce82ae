// Turns a user's request into the network's input, as transformers' processor would: the chat
// template with one image / video item per medium, image and video preprocessing (frames to RGB as
// videoconvert does, then transformers' processors), and the prompt's token ids with the pads
// expanded. Runs off the caller's
// thread (submit() only copies the frames) and off the inference loop.
#pragma once

#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "model/config.h"
#include "preprocessing/owned_frame.h"
#include "qwenvl/engine.h"
#include "runtime/model_runner.h"
#include "tokenizer/tokenizer.h"

namespace qwenvl::runtime {

// What the preparation reads from the model directory, loaded once.
struct ModelAssets {
  model::ModelFiles files;
  model::Tokenizer tokenizer;
  model::ChatTemplate chat_template;
};

// The frames of a request, owned by the engine from submit() on.
struct RequestMedia {
  std::vector<model::OwnedFrame> images;
  std::vector<model::OwnedFrame> clip;
};

// Validates and copies the request's frames (throws qwenvl::Error naming the bad frame); frames in
// CUDA memory are checked against `device` (where they will be prepared) and kept as they are.
RequestMedia copy_media(const Request& request, const at::Device& device = at::kCPU);

// Drops the request's own references to the caller's frames (FrameView::keep_alive) once
// copy_media has taken what it needs: a frame in CUDA memory is then released as soon as the
// media are, not when the request ends.
void release_request_frames(Request& request);

// The prompt as the template renders it, with one image item per image and a video item for a clip.
std::string render_prompt(const ModelAssets& assets, const Request& request);

// The clip's seconds per temporal patch: temporal_patch_size / fps, the frame rate measured from
// the frames' timestamps (transformers' default of 24 fps when it cannot be measured).
double clip_second_per_grid(const std::vector<model::OwnedFrame>& clip, int64_t temporal_patch_size);

// Everything at once; throws qwenvl::Error for anything wrong with the request. The frames are
// converted, resampled and patchified on `pixels_device` (the same bits on the CPU and a GPU; on a
// GPU on the calling thread's current stream), and the pixels stay there.
PreparedPrompt prepare_prompt(const ModelAssets& assets, const Request& request, const RequestMedia& media,
                              const at::Device& pixels_device = at::kCPU);

}  // namespace qwenvl::runtime

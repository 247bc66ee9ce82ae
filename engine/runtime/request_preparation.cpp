#include "runtime/request_preparation.h"

#include <string>

#include "chat/conversation.h"
#include "chat/prompt.h"
#include "preprocessing/image_processor.h"
#include "preprocessing/video_processor.h"
#include "qwenvl/error.h"

namespace qwenvl::runtime {

RequestMedia copy_media(const Request& request, const at::Device& device) {
  if (!request.images.empty() && !request.clip.empty())
    throw Error("a request carries images or one clip, not both");
  RequestMedia media;
  for (size_t i = 0; i < request.images.size(); ++i) {
    try {
      media.images.push_back(model::copy_frame(request.images[i], device));
    } catch (const Error& e) {
      throw Error("image " + std::to_string(i + 1) + ": " + e.what());
    }
  }
  for (size_t i = 0; i < request.clip.size(); ++i) {
    try {
      media.clip.push_back(model::copy_frame(request.clip[i], device));
    } catch (const Error& e) {
      throw Error("clip frame " + std::to_string(i + 1) + ": " + e.what());
    }
  }
  return media;
}

void release_request_frames(Request& request) {
  for (FrameView& frame : request.images) frame.keep_alive.reset();
  for (FrameView& frame : request.clip) frame.keep_alive.reset();
}

std::string render_prompt(const ModelAssets& assets, const Request& request) {
  std::vector<model::ContentItem> content;
  for (size_t i = 0; i < request.images.size(); ++i) content.push_back(model::ContentItem::image());
  if (!request.clip.empty()) content.push_back(model::ContentItem::video());
  content.push_back(model::ContentItem::of_text(request.prompt));
  return assets.chat_template.render(model::conversation(request.system_prompt, request.history, std::move(content)), {});
}

double clip_second_per_grid(const std::vector<model::OwnedFrame>& clip, int64_t temporal_patch_size) {
  double fps = 24.0;  // transformers' sampled_fps when the rate is unknown
  if (clip.size() >= 2) {
    const double span = clip.back().layout.timestamp_s - clip.front().layout.timestamp_s;
    if (span > 0) fps = static_cast<double>(clip.size() - 1) / span;
  }
  return static_cast<double>(temporal_patch_size) / fps;
}

PreparedPrompt prepare_prompt(const ModelAssets& assets, const Request& request, const RequestMedia& media,
                              const at::Device& pixels_device) {
  const auto& files = assets.files;
  PreparedPrompt p;
  std::vector<model::GridThw> image_grids, video_grids;

  std::vector<at::Tensor> image_pixels;
  for (size_t i = 0; i < media.images.size(); ++i) {
    model::VisionInput v;
    try {
      v = model::preprocess_image(media.images[i], files.image, request.min_pixels, request.max_pixels, pixels_device);
    } catch (const Error& e) {
      throw Error("image " + std::to_string(i + 1) + ": " + e.what());
    }
    image_pixels.push_back(v.pixel_values);
    image_grids.push_back(v.grid_thw);
    p.image_grids.push_back(v.grid_thw);
  }
  if (!image_pixels.empty()) p.image_pixels = at::cat(image_pixels);

  if (!media.clip.empty()) {
    model::VideoOptions options;
    options.min_pixels = request.min_pixels;
    options.max_pixels = request.max_pixels;
    model::VisionInput v;
    try {
      v = model::preprocess_video(media.clip, files.video, options, pixels_device);
    } catch (const Error& e) {
      throw Error(std::string("clip: ") + e.what());
    }
    p.video_pixels = v.pixel_values;
    p.video_grids.push_back(v.grid_thw);
    video_grids.push_back(v.grid_thw);
    p.video_second_per_grid.push_back(clip_second_per_grid(media.clip, files.video.temporal_patch_size));
  }

  const auto tokens = model::build_prompt_tokens(assets.tokenizer, render_prompt(assets, request), image_grids,
                                                 video_grids, files.image.merge_size, files.video.merge_size);
  p.ids.assign(tokens.input_ids.begin(), tokens.input_ids.end());
  p.token_types.assign(tokens.mm_token_type_ids.begin(), tokens.mm_token_type_ids.end());
  return p;
}

}  // namespace qwenvl::runtime

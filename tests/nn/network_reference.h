// The network reference cases written by scripts/fixtures/network_cases.py, read for the parity
// tests: transformers 5.17's inputs and outputs for each (model, case).
#pragma once

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "nn/qwen2_5_vl.h"
#include "nn/vision_geometry.h"
#include "qwenvl/engine.h"
#include "runtime/model_runner.h"
#include "test_util.h"

namespace qwenvl::test {

struct NetworkCase {
  std::string name;
  nlohmann::json info;                     // the case's entry of index.json
  std::map<std::string, at::Tensor> t;     // every tensor of <case>.safetensors (owned copies)
  bool has(const std::string& key) const { return t.count(key) != 0; }
};

inline std::filesystem::path network_reference_dir(const std::string& model) {
  return fixtures_dir() / "reference" / "network" / model;
}

inline std::vector<NetworkCase> load_network_cases(const std::string& model) {
  const auto dir = network_reference_dir(model);
  const auto index = nlohmann::json::parse(read_text(dir / "index.json"));
  std::vector<NetworkCase> cases;
  for (const auto& entry : index.at("cases")) {
    NetworkCase c;
    c.name = entry.at("name").get<std::string>();
    c.info = entry;
    auto file = model::SafetensorsFile::open(dir / (c.name + ".safetensors"));
    for (const auto& e : file->tensors()) c.t[e.name] = file->tensor(e).clone();
    cases.push_back(std::move(c));
  }
  return cases;
}

inline std::vector<nn::GridTHW> grids_of(const at::Tensor& grid_thw) {
  std::vector<nn::GridTHW> grids;
  auto g = grid_thw.to(at::kLong).contiguous();
  for (int64_t i = 0; i < g.size(0); ++i)
    grids.push_back({g[i][0].item<int64_t>(), g[i][1].item<int64_t>(), g[i][2].item<int64_t>()});
  return grids;
}

// The reference processor's output as our runner's input (bypassing our tokenizer and
// preprocessing, which have parity tests of their own).
inline runtime::PreparedPrompt prepared_prompt(const NetworkCase& c) {
  runtime::PreparedPrompt p;
  auto ids = c.t.at("input_ids").to(at::kLong).contiguous();
  p.ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  auto types = c.t.at("mm_token_type_ids").to(at::kLong).contiguous();
  for (int64_t i = 0; i < types.numel(); ++i) p.token_types.push_back(static_cast<uint8_t>(types.data_ptr<int64_t>()[i]));
  if (c.has("pixel_values")) {
    p.image_pixels = c.t.at("pixel_values");
    p.image_grids = grids_of(c.t.at("image_grid_thw"));
  }
  if (c.has("pixel_values_videos")) {
    p.video_pixels = c.t.at("pixel_values_videos");
    p.video_grids = grids_of(c.t.at("video_grid_thw"));
    auto s = c.t.at("second_per_grid_ts").to(at::kDouble).contiguous();
    p.video_second_per_grid.assign(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
  }
  return p;
}

// A fixture model in fp32 on `device`, loaded once per process and kept.
struct LoadedModel {
  model::ModelFiles files;
  model::Weights weights;
  std::unique_ptr<nn::Qwen25VL> net;
};

inline LoadedModel& load_fixture_model(const std::string& name, at::Device device = at::kCPU) {
  static std::map<std::string, std::unique_ptr<LoadedModel>> cache;
  auto& slot = cache[name + "@" + device.str()];
  if (!slot) {
    const auto dir = fixtures_dir() / "models" / name;
    auto files = model::load_model_files(dir);
    model::WeightLoadOptions options;
    options.dtype = at::kFloat;
    auto weights = model::Weights::load(dir, files.model, options);
    slot = std::make_unique<LoadedModel>(LoadedModel{std::move(files), std::move(weights), nullptr});
    slot->net = std::make_unique<nn::Qwen25VL>(slot->files.model, slot->weights, at::kFloat, device);
  }
  return *slot;
}

inline std::vector<int64_t> ids_of(const at::Tensor& t) {
  auto x = t.to(at::kLong).contiguous();
  return {x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + x.numel()};
}

// max |a - b| / max |b|: the error measure every parity test states.
inline double relative_error(const at::Tensor& a, const at::Tensor& b) {
  auto x = a.to(at::kDouble), y = b.to(at::kDouble);
  return (x - y).abs().max().item<double>() / std::max(y.abs().max().item<double>(), 1e-30);
}

// A request for a reference case, built from its raw frames as a user would.
struct CaseRequest {
  Request request;
  std::vector<at::Tensor> frames;  // keeps the pixels alive until submit() has copied them
};

inline CaseRequest case_request(const NetworkCase& c) {
  CaseRequest r;
  for (int i = 0; i < c.info.at("images").get<int>(); ++i) {
    auto img = c.t.at("image" + std::to_string(i)).contiguous();
    r.frames.push_back(img);
    r.request.images.push_back(FrameView::packed(PixelFormat::kRGB, static_cast<int>(img.size(1)),
                                                 static_cast<int>(img.size(0)), img.data_ptr<uint8_t>()));
  }
  if (c.has("video")) {
    auto video = c.t.at("video").contiguous();  // [frames, H, W, 3]
    const double fps = c.info.at("video_fps").get<double>();
    r.frames.push_back(video);
    for (int64_t f = 0; f < video.size(0); ++f)
      r.request.clip.push_back(FrameView::packed(PixelFormat::kRGB, static_cast<int>(video.size(2)),
                                                 static_cast<int>(video.size(1)), video[f].data_ptr<uint8_t>(),
                                                 static_cast<double>(f) / fps));
  }
  r.request.prompt = c.info.at("question").get<std::string>();
  if (c.info.at("system").is_string()) r.request.system_prompt = c.info.at("system").get<std::string>();
  r.request.sampling.temperature = 0.0;
  r.request.sampling.repetition_penalty = 1.0;
  r.request.sampling.max_new_tokens = static_cast<int>(c.t.at("greedy_ids").numel());
  return r;
}

inline std::vector<int32_t> ids32(const at::Tensor& t) {
  auto x = t.to(at::kInt).contiguous();
  return {x.data_ptr<int32_t>(), x.data_ptr<int32_t>() + x.numel()};
}

}  // namespace qwenvl::test

#include "engine_registry.h"

#include <chrono>
#include <map>
#include <mutex>
#include <vector>

namespace qwenvl::gst {
namespace {

struct Entry {
  std::weak_ptr<Engine> engine;
  uint64_t instance = 0;
  uint64_t warmup_ns = 0;
  std::string identity, description;
  int max_batch = 0;
};

std::mutex registry_mutex;
std::map<std::string, Entry>& registry() {
  static auto* entries = new std::map<std::string, Entry>();  // never destroyed: engines may outlive exit handlers
  return *entries;
}

// One tiny request (a grey 32x32 image, one new token) so that the first frame of a stream does not
// pay for first-use allocations; its time is the element's first latency estimate.
uint64_t warm_up(Engine& engine) {
  std::vector<uint8_t> grey(32 * 32 * 3, 128);
  FrameView view;
  view.format = PixelFormat::kRGB;
  view.width = view.height = 32;
  view.planes[0] = grey.data();
  view.strides[0] = 32 * 3;
  Request request;
  request.images.push_back(view);
  request.prompt = "Hi";
  request.sampling.max_new_tokens = 1;
  request.sampling.temperature = 0.0;
  request.stream_id = "qwenvl-warm-up";
  const auto start = std::chrono::steady_clock::now();
  Result result = engine.submit(std::move(request)).result.get();
  if (result.status != Status::kAnswered)
    throw Error(std::string("the engine's warm-up request ") + status_name(result.status) + ": " + result.error);
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace

SharedEngine acquire_shared_engine(const std::string& engine_id, const EngineRecipe& recipe) {
  const std::string key = engine_id.empty() ? recipe.identity : "engine-id=" + engine_id;
  // Held while creating: a second element asking for the same engine waits for it, not a second copy.
  std::lock_guard<std::mutex> lock(registry_mutex);
  Entry& entry = registry()[key];
  if (auto engine = entry.engine.lock()) {
    if (!engine_id.empty() && entry.identity != recipe.identity)
      throw Error("engine-id '" + engine_id + "' already runs " + entry.description +
                  "; give this element the same model, devices, placement and dtype (or remote-url and remote-model) or another engine-id");
    return SharedEngine{engine, entry.instance, entry.warmup_ns, key, entry.max_batch};
  }
  std::string error;
  Engine* raw = recipe.create(&error);
  if (raw == nullptr) throw Error(error.empty() ? "the engine could not be created" : error);
  std::shared_ptr<Engine> engine(raw, [](Engine* e) { delete e; });
  static uint64_t next_instance = 0;
  entry.engine = engine;
  entry.instance = ++next_instance;
  entry.identity = recipe.identity;
  entry.description = recipe.description;
  entry.max_batch = recipe.max_batch;
  entry.warmup_ns = warm_up(*engine);
  return SharedEngine{engine, entry.instance, entry.warmup_ns, key, entry.max_batch};
}

}  // namespace qwenvl::gst

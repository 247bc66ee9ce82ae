// Prometheus text for the server's counters and the engine's stats.
#include "metrics.h"

#include <cstdio>

namespace qwenvl::server {

namespace {

// Seconds from a few milliseconds (a short answer on a GPU) to minutes (a long one on a CPU).
const std::vector<double> kSecondsBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                             5,     10,   20,    30,   60,  120,  300, 600};

std::string number(double v) {
  char text[64];
  std::snprintf(text, sizeof text, "%.15g", v);
  return text;
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, double value, const std::string& labels = {}) {
  out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + number(value) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < upper_bounds_.size() && value > upper_bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::write(const std::string& name, std::string& out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    cumulative += counts_[i];
    sample(out, name + "_bucket", static_cast<double>(cumulative), "le=\"" + number(upper_bounds_[i]) + "\"");
  }
  sample(out, name + "_bucket", static_cast<double>(count_), "le=\"+Inf\"");
  sample(out, name + "_sum", sum_);
  sample(out, name + "_count", static_cast<double>(count_));
}

Metrics::Metrics()
    : outcomes_{{"answered", 0}, {"cancelled", 0}, {"expired", 0}, {"failed", 0}, {"rejected", 0}},
      ttft_(kSecondsBuckets),
      latency_(kSecondsBuckets) {}

void Metrics::rejected() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++outcomes_["rejected"];
}

void Metrics::ended(const Result& result) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++outcomes_[status_name(result.status)];
  prompt_tokens_ += static_cast<uint64_t>(result.prompt_tokens);
  generated_tokens_ += result.token_ids.size();
  if (result.status == Status::kAnswered) {
    ttft_.observe(result.ttft_ms / 1000.0);
    latency_.observe(result.total_ms / 1000.0);
  }
}

void Metrics::in_flight(int delta) {
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_ += delta;
}

std::string Metrics::render(const EngineStats& stats, const std::string& device) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    header(out, "qwenvl_requests_total", "counter", "Chat completion requests by how they ended.");
    for (const auto& [outcome, count] : outcomes_)
      sample(out, "qwenvl_requests_total", static_cast<double>(count), "outcome=\"" + outcome + "\"");
    header(out, "qwenvl_prompt_tokens_total", "counter", "Prompt tokens of the requests the engine ended.");
    sample(out, "qwenvl_prompt_tokens_total", static_cast<double>(prompt_tokens_));
    header(out, "qwenvl_generated_tokens_total", "counter", "Tokens generated, EOS included.");
    sample(out, "qwenvl_generated_tokens_total", static_cast<double>(generated_tokens_));
    header(out, "qwenvl_time_to_first_token_seconds", "histogram", "Submission to first token, answered requests.");
    ttft_.write("qwenvl_time_to_first_token_seconds", out);
    header(out, "qwenvl_request_latency_seconds", "histogram", "Submission to last token, answered requests.");
    latency_.write("qwenvl_request_latency_seconds", out);
    header(out, "qwenvl_http_requests_in_flight", "gauge", "Chat completions being answered or streamed.");
    sample(out, "qwenvl_http_requests_in_flight", static_cast<double>(in_flight_));
  }
  header(out, "qwenvl_queue_depth", "gauge", "Requests submitted to the engine and not yet running.");
  sample(out, "qwenvl_queue_depth", static_cast<double>(stats.queued));
  header(out, "qwenvl_running_sequences", "gauge", "Sequences in the engine's running batch.");
  sample(out, "qwenvl_running_sequences", static_cast<double>(stats.running));
  header(out, "qwenvl_kv_blocks_used", "gauge", "KV cache blocks held by running sequences.");
  sample(out, "qwenvl_kv_blocks_used", static_cast<double>(stats.kv_blocks_used));
  header(out, "qwenvl_kv_blocks_total", "gauge", "KV cache blocks in all.");
  sample(out, "qwenvl_kv_blocks_total", static_cast<double>(stats.kv_blocks_total));
  header(out, "qwenvl_device_memory_peak_bytes", "gauge",
         "Most device memory held by tensors at once since the engine started (0 on the CPU).");
  sample(out, "qwenvl_device_memory_peak_bytes", static_cast<double>(stats.peak_device_memory_bytes),
         "device=\"" + device + "\"");
  header(out, "qwenvl_engine_forwards_total", "counter", "Network forwards of the engine, by phase.");
  sample(out, "qwenvl_engine_forwards_total", static_cast<double>(stats.vision_forwards), "phase=\"vision\"");
  sample(out, "qwenvl_engine_forwards_total", static_cast<double>(stats.prefill_forwards), "phase=\"prefill\"");
  sample(out, "qwenvl_engine_forwards_total", static_cast<double>(stats.decode_forwards), "phase=\"decode\"");
  return out;
}

}  // namespace qwenvl::server

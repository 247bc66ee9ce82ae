// Decode steps replayed as device graphs (kernels/device/graph.h), one graph per batch-size
// bucket (1, 2, 4, ... and max_batch). A step of S sequences runs the smallest bucket B >= S: its
// inputs are copied into the bucket's fixed buffers (rows past S are padding: slot -1, so nothing
// is written to the cache, and length 0, so nothing is attended), the graph is replayed and the
// first S rows of its logits are the step's. Recorded once, when the engine starts; block tables
// are as wide as max_context needs, so any admitted sequence fits.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/device/graph.h"
#include "nn/kv_cache.h"
#include "nn/qwen2_5_vl.h"
#include "runtime/decode_step.h"

namespace qwenvl::runtime {

// What a graph's step takes and gives: the whole model takes the tokens' ids and gives fp32 logits;
// a pipeline stage (stages/staged_executor.h) takes the residual stream [S, hidden] unless it holds
// the embeddings, and hands the residual stream on unless it holds the LM head.
struct DecodeGraphEnds {
  bool takes_ids = true;
  bool gives_logits = true;
};

class DecodeGraphs {
 public:
  DecodeGraphs(const nn::Qwen25VL& model, nn::KvCache& cache, int max_batch, int64_t table_width,
               DecodeGraphEnds ends = {});

  // Whether run() takes this step (not too many sequences, tables not too wide).
  bool covers(const DecodeStep& step) const;
  // The step's fp32 logits [S, vocab] on the device (or, for a stage without the LM head, its
  // residual stream [S, hidden]). They live in the graph's memory: read them (queue what reads them
  // on the stream) before the next run(). `input`: with takes_ids, the ids ([S] int64 on the device)
  // when defined, else step.ids; without, the residual stream [S, hidden] on the device.
  at::Tensor run(const DecodeStep& step, const at::Tensor& input = at::Tensor());

  std::vector<int64_t> bucket_sizes() const;
  // The bytes the graphs' memory pool reserves on the device (fixed once they are recorded).
  int64_t pool_reserved_bytes() const;

 private:
  struct Bucket {
    int64_t size = 0;
    // Pinned staging (ids | positions | slots, lens | tables), two sets used in turn: the engine
    // may queue the next step before this one's copies have run, but not two steps ahead.
    at::Tensor host_longs[2], host_ints[2];
    int next_staging = 0;
    at::Tensor device_longs, device_ints;  // what the graph reads
    at::Tensor device_hidden;              // and the residual stream, where it takes no ids
    at::Tensor output;                     // what the graph writes
    std::unique_ptr<kernels::DeviceGraph> graph;
  };
  void record(Bucket& bucket, const kernels::DeviceGraph* share_pool_with);

  const nn::Qwen25VL& model_;
  nn::KvCache& cache_;
  int64_t table_width_;
  DecodeGraphEnds ends_;
  std::vector<Bucket> buckets_;  // ascending sizes
};

}  // namespace qwenvl::runtime

#include "runtime/decode_graphs.h"

#include <algorithm>
#include <string>

#include "qwenvl/error.h"

namespace qwenvl::runtime {

namespace {

std::vector<int64_t> bucket_sizes_for(int max_batch) {
  std::vector<int64_t> sizes;
  for (int64_t b = 1; b < max_batch; b *= 2) sizes.push_back(b);
  sizes.push_back(max_batch);
  return sizes;
}

// Staging layout of a bucket of B rows and table width W:
//   longs: ids [B] | positions [3, B] | slot_mapping [B]
//   ints:  seq_lens [B] | block_tables [B, W]
int64_t longs_size(int64_t b) { return 5 * b; }
int64_t ints_size(int64_t b, int64_t w) { return b + b * w; }

}  // namespace

DecodeGraphs::DecodeGraphs(const nn::Qwen25VL& model, nn::KvCache& cache, int max_batch, int64_t table_width,
                           DecodeGraphEnds ends)
    : model_(model), cache_(cache), table_width_(table_width), ends_(ends) {
  if (max_batch <= 0 || table_width <= 0) throw Error("decode graphs: max_batch and table width must be > 0");
  const at::Device device = model.device();
  for (int64_t size : bucket_sizes_for(max_batch)) {
    Bucket b;
    b.size = size;
    const auto pinned = at::TensorOptions().pinned_memory(true);
    for (int i = 0; i < 2; ++i) {
      b.host_longs[i] = at::empty({longs_size(size)}, pinned.dtype(at::kLong));
      b.host_ints[i] = at::empty({ints_size(size, table_width)}, pinned.dtype(at::kInt));
    }
    b.device_longs = at::empty({longs_size(size)}, at::TensorOptions(device).dtype(at::kLong));
    b.device_ints = at::empty({ints_size(size, table_width)}, at::TensorOptions(device).dtype(at::kInt));
    if (!ends.takes_ids)
      b.device_hidden = at::zeros({size, model.config().text.hidden_size}, at::TensorOptions(device).dtype(model.dtype()));
    buckets_.push_back(std::move(b));
  }
  // Largest first: the smaller graphs then fit in the scratch memory the largest left in the pool.
  const kernels::DeviceGraph* pool = nullptr;
  for (auto it = buckets_.rbegin(); it != buckets_.rend(); ++it) {
    record(*it, pool);
    pool = it->graph.get();
  }
}

std::vector<int64_t> DecodeGraphs::bucket_sizes() const {
  std::vector<int64_t> sizes;
  for (const Bucket& b : buckets_) sizes.push_back(b.size);
  return sizes;
}

void DecodeGraphs::record(Bucket& bucket, const kernels::DeviceGraph* share_pool_with) {
  const int64_t b = bucket.size, w = table_width_;
  // Recording runs the step (once to warm up, once recorded): as padding rows, it writes and reads nothing.
  bucket.device_longs.zero_();
  bucket.device_longs.narrow(0, 4 * b, b).fill_(-1);
  bucket.device_ints.zero_();
  nn::AttentionBatch batch;
  batch.kind = nn::AttentionBatch::Kind::kDecode;
  batch.max_seqlen_q = 1;
  batch.max_seq_len = w * cache_.shape().block_size;
  batch.seq_lens = bucket.device_ints.narrow(0, 0, b);
  batch.block_tables = bucket.device_ints.narrow(0, b, b * w).view({b, w});
  batch.slot_mapping = bucket.device_longs.narrow(0, 4 * b, b);
  const at::Tensor ids = bucket.device_longs.narrow(0, 0, b);
  const at::Tensor positions = bucket.device_longs.narrow(0, b, 3 * b).view({3, b});
  auto step = [&] {
    const at::Tensor input = ends_.takes_ids ? model_.embed_text(ids) : bucket.device_hidden;
    const at::Tensor hidden = model_.forward_to_record(input, positions, batch, cache_);
    bucket.output = ends_.gives_logits ? model_.logits(hidden).to(at::kFloat) : hidden;
  };
  bucket.graph = std::make_unique<kernels::DeviceGraph>(model_.device(), step, share_pool_with);
}

bool DecodeGraphs::covers(const DecodeStep& step) const {
  return step.sequences > 0 && step.sequences <= buckets_.back().size && step.table_width <= table_width_;
}

int64_t DecodeGraphs::pool_reserved_bytes() const { return buckets_.back().graph->pool_reserved_bytes(); }

at::Tensor DecodeGraphs::run(const DecodeStep& step, const at::Tensor& input) {
  if (!covers(step))
    throw Error("decode graphs: a step of " + std::to_string(step.sequences) + " sequences with " +
                std::to_string(step.table_width) + "-block tables has no graph");
  const int64_t s = step.sequences;
  Bucket& bucket = *std::find_if(buckets_.begin(), buckets_.end(), [&](const Bucket& b) { return b.size >= s; });
  const int64_t b = bucket.size, w = table_width_;

  const at::Tensor host_longs = bucket.host_longs[bucket.next_staging];
  const at::Tensor host_ints = bucket.host_ints[bucket.next_staging];
  bucket.next_staging ^= 1;
  int64_t* longs = host_longs.data_ptr<int64_t>();
  std::fill(longs, longs + longs_size(b), 0);
  std::copy(step.ids.begin(), step.ids.end(), longs);
  for (int64_t axis = 0; axis < 3; ++axis)
    std::copy_n(step.positions.begin() + axis * s, s, longs + b + axis * b);
  std::fill(longs + 4 * b, longs + 5 * b, -1);
  std::copy(step.slot_mapping.begin(), step.slot_mapping.end(), longs + 4 * b);

  int32_t* ints = host_ints.data_ptr<int32_t>();
  std::fill(ints, ints + ints_size(b, w), 0);
  std::copy(step.seq_lens.begin(), step.seq_lens.end(), ints);
  for (int64_t row = 0; row < s; ++row)
    std::copy_n(step.block_tables.begin() + row * step.table_width, step.table_width, ints + b + row * w);

  // Asynchronous copies from pinned memory. This staging set is rewritten two runs of the bucket
  // later, by when the caller has waited for something queued behind these copies (the sampled ids
  // of this step's logits: the engine queues at most one step ahead of what it has read).
  bucket.device_longs.copy_(host_longs, /*non_blocking=*/true);
  bucket.device_ints.copy_(host_ints, /*non_blocking=*/true);
  if (!ends_.takes_ids) {
    if (!input.defined() || input.dim() != 2 || input.size(0) != s)
      throw Error("decode graphs: a stage without the embeddings takes the residual stream of every row");
    bucket.device_hidden.narrow(0, 0, s).copy_(input, /*non_blocking=*/true);
  } else if (input.defined()) {
    bucket.device_longs.narrow(0, 0, s).copy_(input, /*non_blocking=*/true);
  }
  bucket.graph->replay();
  model_.count_replayed_decode(s);
  return bucket.output.narrow(0, 0, s);
}

}  // namespace qwenvl::runtime

// ModelExecutor on one device: the runner's network calls that leave the logits where they are.
#include "runtime/single_device_executor.h"

#include "runtime/fault_injection.h"

namespace qwenvl::runtime {

SingleDeviceExecutor::SingleDeviceExecutor(const nn::Qwen25VL& model, const nn::KvCacheShape& shape, at::ScalarType dtype,
                                           at::Device device)
    : model_(model),
      cache_(shape, dtype, device), allocator_(cache_.shape().num_blocks), total_blocks_(allocator_.num_blocks()),
      runner_(model, cache_) {}

bool SingleDeviceExecutor::allocate(int64_t blocks, SequenceSlot& slot) { return allocator_.allocate(blocks, slot.blocks); }

void SingleDeviceExecutor::release(SequenceSlot& slot) {
  allocator_.release(slot.blocks);
  slot.blocks.clear();
}

at::Tensor SingleDeviceExecutor::prefill(const std::vector<const PreparedPrompt*>& prompts,
                                         const std::vector<SequenceSlot*>& slots) {
  throw_if_device_lost_injected(0);
  return runner_.prefill_on_device(prompts, slots);
}

at::Tensor SingleDeviceExecutor::decode(const std::vector<int64_t>& tokens, const std::vector<SequenceSlot*>& slots) {
  throw_if_device_lost_injected(0);
  return runner_.decode_on_device(tokens, slots);
}

at::Tensor SingleDeviceExecutor::decode(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots) {
  throw_if_device_lost_injected(0);
  return runner_.decode_on_device(tokens, slots);
}

std::vector<at::Tensor> SingleDeviceExecutor::embed_prompts(const std::vector<const PreparedPrompt*>& prompts) {
  throw_if_device_lost_injected(0);
  return runner_.embed_prompts(prompts);
}

at::Tensor SingleDeviceExecutor::mixed_step(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots,
                                            const std::vector<const PreparedPrompt*>& prompts,
                                            const std::vector<at::Tensor>& embeddings,
                                            const std::vector<SequenceSlot*>& prompt_slots) {
  throw_if_device_lost_injected(0);
  return runner_.mixed_on_device(tokens, slots, prompts, embeddings, prompt_slots);
}

}  // namespace qwenvl::runtime

"""The caption workload of docs/BENCHMARK-METHOD.md on transformers: the reference side of
caption_bench.sh, run on the GPU machine against the same model directory as qwenvl-bench.

For each batch size B: B copies of one random 448x448 RGB frame with "Describe this image." in the
chat template, Qwen2_5_VLForConditionalGeneration in bf16 with sdpa attention, eval(),
generate(max_new_tokens=32, min_new_tokens=32, do_sample=False); one warm-up, then the median of 3
timed calls with torch.cuda.synchronize() around each. TTFT is one forward of the batch (the
prefill alone), timed the same way. Peak = torch.cuda.max_memory_allocated() over the batch's calls.

  transformers_caption.py MODEL_DIR [--batches 1,8,32,64] [--runs 3] [--json FILE] [--device cuda]
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

NEW_TOKENS = 32


def timed(fn, runs: int) -> float:
    """Median wall time in ms of `runs` calls after one warm-up, synchronized around each."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()
    times = []
    for _ in range(runs):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("--batches", default="1,8,32,64")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--device", default="cuda")  # cpu: a smoke test of this script on a tiny model
    a = p.parse_args()
    cuda = a.device.startswith("cuda")

    processor = AutoProcessor.from_pretrained(a.model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        a.model_dir, dtype=torch.bfloat16, attn_implementation="sdpa").to(a.device).eval()
    rgb = np.random.default_rng(1234).integers(0, 256, size=(448, 448, 3), dtype=np.uint8)
    image = Image.fromarray(rgb, "RGB")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    rows = []
    for batch in [int(b) for b in a.batches.split(",")]:
        inputs = processor(text=[text] * batch, images=[image] * batch, return_tensors="pt", padding=True).to(a.device)
        grid = inputs["image_grid_thw"][0].tolist()
        prompt_len = inputs["input_ids"].shape[1]
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        out_len = []

        def generate():
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
            out_len.append(out.shape[1] - prompt_len)

        def prefill():
            with torch.inference_mode():
                model(**inputs)

        latency = timed(generate, a.runs)
        ttft = timed(prefill, a.runs)
        assert all(n == NEW_TOKENS for n in out_len), out_len
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
        row = dict(batch=batch, latency_ms=latency, ttft_ms=ttft,
                   decode_tokens_per_s=batch * (NEW_TOKENS - 1) / ((latency - ttft) / 1000),
                   frames_per_s=batch / (latency / 1000), peak_gib=peak, prompt_tokens=prompt_len, grid=grid)
        rows.append(row)
        print(f"B={batch} prompt {prompt_len} tokens grid {grid}: latency {latency:.1f} ms, prefill {ttft:.1f} ms, "
              f"peak {peak:.2f} GiB", file=sys.stderr, flush=True)

    print(f"transformers caption benchmark ({a.model_dir}, bf16, sdpa; {torch.cuda.get_device_name() if cuda else a.device}), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\ncommand: {' '.join(sys.argv)}\n")
    print("| batch | latency ms | prefill ms | decode tok/s | frames/s | peak GiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['latency_ms']:.1f} | {r['ttft_ms']:.1f} | {r['decode_tokens_per_s']:.1f} | "
              f"{r['frames_per_s']:.2f} | {r['peak_gib']:.2f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

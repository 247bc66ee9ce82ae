"""The batch-1 floor of issue 18 item 3, from parts measured in the same run, beside our latency.

floor = decode steps x (bytes one decode step must read) / copy bandwidth + vision ms + prefill ms

- bytes a decode step reads: the language model's weights (every tensor of the model directory but
  the vision tower's and the input embedding table, of which a step reads one row; a tied embedding
  counts once, as the output projection), at --bytes-per-element (2: bf16, as the engine runs on
  CUDA), plus K and V of every layer at that step's context (prompt + tokens so far);
- decode steps = new tokens - 1 (the prefill gives the first token);
- copy bandwidth: the best of qwenvl-kernel-bench --sections copy (read + write), from --copy-from;
- vision and prefill ms: qwenvl-bench --phases 1 at batch 1 (--phases-json), which synchronises
  after each phase;
- our latency, TTFT and the decode step: qwenvl-bench at batch 1 without --phases (--ours-json);
  the decode step's achieved bandwidth = bytes of the steps / (latency - TTFT).

  batch1_floor.py MODEL_DIR --copy-from KERNEL_BENCH_OUTPUT --ours-json B1.json --phases-json B1P.json
                  [--label 7b] [--bytes-per-element 2]
Prints one markdown row (with its heading); the inputs' figures are all read, none assumed.
"""
import argparse
import json
import re
import struct
from pathlib import Path


def tensor_elements(model_dir):
    """{name: elements} over every .safetensors file's header (the tensors themselves are not read)."""
    sizes = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            n = 1
            for d in info["shape"]:
                n *= d
            sizes[name] = n
    if not sizes:
        raise SystemExit(f"batch1_floor: no .safetensors in {model_dir}")
    return sizes


def decode_weight_elements(sizes):
    """Elements a decode step reads: all but the vision tower and the input embedding table (one row
    of it is read), the embedding counted once when the output projection is tied to it."""
    has_lm_head = any(name.endswith("lm_head.weight") for name in sizes)
    total = 0
    for name, n in sizes.items():
        if "visual." in name:
            continue
        if name.endswith("embed_tokens.weight") and has_lm_head:
            continue
        total += n
    return total


def text_config(model_dir):
    config = json.loads((Path(model_dir) / "config.json").read_text())
    text = config.get("text_config") or {}
    get = lambda key: text.get(key, config.get(key))
    heads, hidden = get("num_attention_heads"), get("hidden_size")
    return dict(layers=get("num_hidden_layers"), kv_heads=get("num_key_value_heads"),
                head_dim=get("head_dim") or hidden // heads)


def copy_bandwidth_tbs(path):
    match = re.search(r"best \*\*([0-9.]+) TB/s\*\*", Path(path).read_text())
    if not match:
        raise SystemExit(f"batch1_floor: no copy bandwidth line in {path} (qwenvl-kernel-bench --sections copy)")
    return float(match.group(1))


def batch1_row(path):
    rows = [r for r in json.loads(Path(path).read_text()) if r["batch"] == 1]
    if not rows:
        raise SystemExit(f"batch1_floor: no batch-1 row in {path}")
    return rows[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--copy-from", required=True)
    parser.add_argument("--ours-json", required=True)
    parser.add_argument("--phases-json", required=True)
    parser.add_argument("--label", default="")
    parser.add_argument("--bytes-per-element", type=int, default=2)
    args = parser.parse_args()

    ours, phases = batch1_row(args.ours_json), batch1_row(args.phases_json)
    tbs = copy_bandwidth_tbs(args.copy_from)
    cfg = text_config(args.model_dir)
    weight_bytes = decode_weight_elements(tensor_elements(args.model_dir)) * args.bytes_per_element
    kv_per_token = 2 * cfg["layers"] * cfg["kv_heads"] * cfg["head_dim"] * args.bytes_per_element
    prompt, steps = ours["prompt_tokens"], ours["new_tokens"] - 1
    # Step k (1..steps) appends token k and attends to the prompt and the k tokens so far.
    kv_bytes = sum(kv_per_token * (prompt + k) for k in range(1, steps + 1))
    step_bytes = weight_bytes * steps + kv_bytes
    decode_floor_ms = step_bytes / (tbs * 1e12) * 1e3
    floor_ms = decode_floor_ms + phases["vision_ms"] + phases["prefill_ms"]
    decode_ms = ours["latency_ms"] - ours["ttft_ms"]
    achieved_tbs = step_bytes / (decode_ms * 1e-3) / 1e12

    print("| model | copy TB/s (best) | weights GB per step | KV MB per step (mean) | prompt tokens | decode steps | "
          "decode floor ms | vision ms | prefill ms | floor ms | batch-1 latency ms | latency / floor | "
          "TTFT ms | decode step ms | decode step TB/s | of copy |")
    print("|---|" + "---:|" * 15)
    print(f"| {args.label or Path(args.model_dir).name} | {tbs:.3f} | {weight_bytes / 1e9:.2f} | "
          f"{kv_bytes / steps / 1e6:.1f} | {prompt} | {steps} | {decode_floor_ms:.1f} | {phases['vision_ms']:.1f} | "
          f"{phases['prefill_ms']:.1f} | {floor_ms:.1f} | {ours['latency_ms']:.1f} | {ours['latency_ms'] / floor_ms:.3f} | "
          f"{ours['ttft_ms']:.1f} | {decode_ms / steps:.2f} | {achieved_tbs:.3f} | {achieved_tbs / tbs:.2f} |")


if __name__ == "__main__":
    main()

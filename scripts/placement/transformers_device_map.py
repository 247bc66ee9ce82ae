"""What `from_pretrained(..., device_map="auto", max_memory=...)` places on each GPU, without a GPU.

transformers 5.17 computes the map in transformers.integrations.accelerate._get_device_map: accelerate's
get_balanced_memory, then infer_auto_device_map over the model's modules by parameter size alone
(activations and the KV cache are never counted). This script builds Qwen2.5-VL from a config on the
meta device (no weights), runs that same function with the given per-GPU memory, and prints, as JSON,
each module's device and the parameter bytes each GPU holds. accelerate's get_max_memory logs
"Device N is not available" on a machine without those GPUs; the map it returns does not depend on
it (the budgets are given).

Needs accelerate 1.15.0 (the GPU machine's) and its psutil/pyyaml: scripts/placement/device_map.sh
installs them beside the project's venv.
  transformers_device_map.py (--shape 3b|7b|32b|72b | --config config.json) --max-memory 24GiB,24GiB [--dtype bf16]
"""
import argparse
import collections
import json
import re
import sys
from pathlib import Path

import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"([0-9.]+)\s*(KiB|MiB|GiB|KB|MB|GB)", text.strip())
    if not m:
        raise SystemExit(f"bad size '{text}' (e.g. 24GiB)")
    return int(float(m.group(1)) * UNITS[m.group(2)])


def load_config(args) -> Qwen2_5_VLConfig:
    if args.config:
        return Qwen2_5_VLConfig.from_dict(json.loads(Path(args.config).read_text()))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import write_random_model  # the published 3B, 7B, 32B and 72B shapes
    return write_random_model.config_for(args.shape, None, None)


def main() -> None:
    parser = argparse.ArgumentParser()
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--shape", choices=["3b", "7b", "32b", "72b"])
    source.add_argument("--config", type=Path)
    parser.add_argument("--max-memory", required=True, help="per GPU, comma-separated: 24GiB,24GiB")
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    args = parser.parse_args()
    from transformers.integrations.accelerate import _get_device_map

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    budgets = {i: parse_bytes(b) for i, b in enumerate(args.max_memory.split(","))}
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(load_config(args)).to(dtype)
    device_map = _get_device_map(model, "auto", dict(budgets), None)

    def device_of(name: str):
        parts = name.split(".")
        for i in range(len(parts), -1, -1):
            key = ".".join(parts[:i])
            if key in device_map:
                return device_map[key]
        return None

    weights = collections.Counter()
    for name, p in model.named_parameters():  # tied parameters appear once
        weights[str(device_of(name))] += p.numel() * p.element_size()
    layers = collections.defaultdict(list)
    for module, device in device_map.items():
        m = re.fullmatch(r"model\.language_model\.layers\.(\d+)", module)
        if m:
            layers[str(device)].append(int(m.group(1)))
    print(json.dumps({
        "max_memory": {str(k): v for k, v in budgets.items()},
        "device_map": {k: str(v) for k, v in device_map.items()},
        "vision_tower": str(device_map.get("model.visual", device_of("model.visual.patch_embed.proj.weight"))),
        "decoder_layers": {d: [min(v), max(v)] for d, v in layers.items()},
        "weight_bytes": dict(weights),
    }, indent=1))


if __name__ == "__main__":
    main()

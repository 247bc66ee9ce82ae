"""Writes a random-weight Qwen2.5-VL model directory tensor by tensor, never holding the model.

Speed and memory are measured on random weights at real shapes (they cost what trained ones cost),
and a 3B or 7B model must not need its size in RAM to be written: the tensor shapes come from
transformers 5.17's model built on the meta device, the names as the published checkpoints have
them (visual.*, model.layers.*), the safetensors header is written first,
then each tensor is drawn and written in slices of at most 64 MB.

  write_random_model.py OUT_DIR --shape 3b|7b|32b|72b|bench300 [--dtype bf16|fp32] [--layers N --vision-layers N]
    [--tokenizer-from DIR]   (copies tokenizer.json / tokenizer_config.json / chat_template.json)
preprocessor_config.json is always the published one (Qwen2VLImageProcessor with CLIP's mean and std,
min/max pixels 3136/12845056), never the tokenizer directory's: llama.cpp's converter reads image_mean
and image_std from it for the vision projector.
"""
import argparse
import json
import resource
import shutil
import struct
import sys
from pathlib import Path

import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import models as fixture_models  # noqa: E402  (the published preprocessor_config.json)

SHAPES = {
    # the published widths (Qwen/Qwen2.5-VL-{3B,7B}-Instruct config.json)
    "3b": dict(text=dict(hidden_size=2048, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
                         intermediate_size=11008, vocab_size=151936), tie=True, out=2048),
    "7b": dict(text=dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                         intermediate_size=18944, vocab_size=152064), tie=False, out=3584),
    # Qwen/Qwen2.5-VL-{32B,72B}-Instruct config.json: as pytorch/torchtune's qwen2_5_vl_32b / _72b builders
    # transcribe them, the Qwen org's Qwen2.5-VL-72B-Instruct-AWQ config.json shows the same vision fields
    # (its intermediate_size 29696 is padded for AWQ; the bf16 model's is 29568)
    "32b": dict(text=dict(hidden_size=5120, num_hidden_layers=64, num_attention_heads=40, num_key_value_heads=8,
                          intermediate_size=27648, vocab_size=152064), tie=False, out=5120,
                vision=dict(intermediate_size=3456)),
    "72b": dict(text=dict(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                          intermediate_size=29568, vocab_size=152064), tie=False, out=8192,
                vision=dict(intermediate_size=3456)),
    # about 300 MB in bf16: a load-memory benchmark that fits CI
    "bench300": dict(text=dict(hidden_size=512, num_hidden_layers=12, num_attention_heads=4, num_key_value_heads=2,
                               intermediate_size=1536, vocab_size=151936), tie=True, out=512,
                     vision=dict(depth=8, hidden_size=512, intermediate_size=1536, num_heads=8,
                                 fullatt_block_indexes=[3, 7])),
}
DTYPES = {"bf16": (torch.bfloat16, "BF16"), "fp32": (torch.float32, "F32")}


def config_for(shape: str, layers: int | None, vision_layers: int | None) -> Qwen2_5_VLConfig:
    s = SHAPES[shape]
    text = dict(s["text"], max_position_embeddings=128000, rms_norm_eps=1e-6, rope_theta=1000000.0,
                rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, use_sliding_window=False,
                bos_token_id=151643, eos_token_id=151645)
    if layers:
        text["num_hidden_layers"] = layers
    vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=s["out"],
                  tokens_per_second=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31])
    vision.update(s.get("vision", {}))
    if vision_layers:
        vision["depth"] = vision_layers
        vision["fullatt_block_indexes"] = [i for i in vision["fullatt_block_indexes"] if i < vision_layers] or [vision_layers - 1]
    # architectures as the published config.json names it: llama.cpp's converter picks its model by it
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=s["tie"],
                            architectures=["Qwen2_5_VLForConditionalGeneration"])


def published_name(name: str) -> str:
    """The tensor's name in the published checkpoints (visual.*, model.layers.*, lm_head), which
    transformers 5.17 maps to its own at load as the engine does; llama.cpp's converter knows only these."""
    for new, old in (("model.visual.", "visual."), ("model.language_model.", "model.")):
        if name.startswith(new):
            return old + name[len(new):]
    return name


def write(out: Path, config: Qwen2_5_VLConfig, dtype: str, seed: int) -> int:
    torch_dtype, tag = DTYPES[dtype]
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    specs = [(published_name(name), list(p.shape)) for name, p in model.state_dict().items()
             if not (config.tie_word_embeddings and name == "lm_head.weight")]
    element = torch.tensor([], dtype=torch_dtype).element_size()
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in specs:
        n = element
        for d in shape:
            n *= d
        header[name] = {"dtype": tag, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    gen = torch.Generator().manual_seed(seed)
    with open(out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape in specs:
            rows = shape[0] if shape else 1
            per_row = max(1, (shape and int(torch.tensor(shape[1:]).prod().item())) or 1)
            step = max(1, (64 << 20) // (per_row * element))
            for start in range(0, rows, step):
                count = min(step, rows - start)
                if name.endswith("norm.weight") or "layernorm" in name or name.endswith("ln_q.weight"):
                    block = 1.0 + 0.05 * torch.randn(count * per_row, generator=gen)
                else:
                    block = 0.02 * torch.randn(count * per_row, generator=gen)
                f.write(block.to(torch_dtype).view(torch.uint8).numpy().tobytes())
    return 8 + len(raw) + offset


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--shape", choices=SHAPES, required=True)
    p.add_argument("--dtype", choices=DTYPES, default="bf16")
    p.add_argument("--layers", type=int)
    p.add_argument("--vision-layers", type=int)
    p.add_argument("--tokenizer-from", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    config = config_for(a.shape, a.layers, a.vision_layers)
    config.save_pretrained(a.out)
    size = write(a.out, config, a.dtype, a.seed)
    for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.json", "generation_config.json"]:
        if (a.tokenizer_from / name).exists():
            shutil.copy(a.tokenizer_from / name, a.out / name)
    fixture_models.write_json(a.out / "preprocessor_config.json", fixture_models.published_preprocessor_config())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"dir": str(a.out), "shape": a.shape, "bytes": size, "writer_peak_rss_mb": round(peak_mb)}))


if __name__ == "__main__":
    main()

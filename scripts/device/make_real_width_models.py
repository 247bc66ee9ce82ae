"""Random-weight Qwen2.5-VL directories at the real 3B and 7B widths (every shape as the Hub's
config.json publishes it, but 4 language layers and 4 vision blocks, full attention at block 3; --full-depth keeps every layer) and
transformers 5.17's logits for
them, for tests/gpu/test_gpu_real_width.cpp. Run on the GPU machine (it needs a GPU and ~20 GB of it).

For each width: OUT/<3b|7b>/ holds a Hub-layout model directory (flat config.json, bf16
model.safetensors, tokenizer and chat template copied from a fixture model with Qwen2's real vocabulary)
and reference.safetensors: the processor's inputs for one 448x448 image with "Describe this image."
(input_ids, mm_token_type_ids, pixel_values, image_grid_thw), forced_ids (fp32 greedy, 33 ids) and the
logits of the prefill's last row and of 32 decode steps fed forced_ids, from transformers in fp32
(logits_fp32) and in bf16 with sdpa (logits_bf16), both loaded from the directory as users load it.

  python3 scripts/device/make_real_width_models.py --out DIR --tokenizer-from FIXTURES/models/tiny-a
"""
import argparse
import gc
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import models as fixture_models  # noqa: E402  (published_config and friends)

DECODE_STEPS = 32
LAYERS = 4


DEVICE = "cuda"
FULL_DEPTH = False  # --full-depth: every layer and block of the published config


def make_dir(out: Path, size: str, tokenizer_from: Path, smoke: bool) -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    flat = fixture_models.published_config(size)
    if not FULL_DEPTH:
        flat["num_hidden_layers"] = LAYERS
        flat["vision_config"].update(depth=LAYERS, fullatt_block_indexes=[LAYERS - 1])
    if smoke:  # small widths, to check this script itself on any machine
        flat.update(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2)
        flat["rope_scaling"]["mrope_section"] = [2, 3, 3]
        flat["vision_config"].update(hidden_size=64, intermediate_size=96, num_heads=4, out_hidden_size=64)
    config = Qwen2_5_VLConfig(**json.loads(json.dumps(flat)))
    torch.manual_seed({"3b": 3, "7b": 7}[size])
    with torch.device(DEVICE):
        model = Qwen2_5_VLForConditionalGeneration(config)
    model = model.to(torch.bfloat16)
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out, max_shard_size="50GB")
    del model
    gc.collect()
    torch.cuda.empty_cache()
    for name in ("config.json", "generation_config.json"):
        (out / name).unlink(missing_ok=True)
    fixture_models.write_json(out / "config.json", flat)
    fixture_models.write_json(out / "generation_config.json", fixture_models.published_generation_config(size))
    fixture_models.write_json(out / "preprocessor_config.json", fixture_models.published_preprocessor_config())
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.json"):
        shutil.copy(tokenizer_from / name, out / name)


def image() -> np.ndarray:
    rng = np.random.default_rng(448)
    y, x = np.mgrid[0:448, 0:448]
    base = np.stack([x * 255 / 447, y * 255 / 447, (x + y) * 127 / 894], -1)
    return np.clip(base + rng.normal(0, 40, size=(448, 448, 3)), 0, 255).astype(np.uint8)


class Force:
    """A logits processor that makes generate() take the given ids (raw logits are still reported)."""

    def __init__(self, ids: torch.Tensor, prompt_len: int):
        self.ids, self.prompt_len = ids, prompt_len

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_len
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.ids[step]] = 0
        return forced


@torch.no_grad()
def reference(out: Path) -> None:
    from transformers import AutoProcessor, LogitsProcessorList, Qwen2_5_VLForConditionalGeneration

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    processor = AutoProcessor.from_pretrained(out)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image()], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, 32, 32]], inputs["image_grid_thw"]
    prompt_len = inputs["input_ids"].shape[1]
    tensors = {"input_ids": inputs["input_ids"][0], "mm_token_type_ids": inputs["mm_token_type_ids"][0].long(),
               "pixel_values": inputs["pixel_values"], "image_grid_thw": inputs["image_grid_thw"]}
    settings = dict(max_new_tokens=DECODE_STEPS + 1, min_new_tokens=DECODE_STEPS + 1, do_sample=False,
                    repetition_penalty=1.0, output_logits=True, return_dict_in_generate=True)
    forced = None
    for dtype, key in ((torch.float32, "logits_fp32"), (torch.bfloat16, "logits_bf16")):
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out, dtype=dtype, attn_implementation="sdpa")
        model = model.to(DEVICE).eval()
        gpu_inputs = {k: v.to(DEVICE) for k, v in inputs.items()}
        extra = {} if forced is None else {"logits_processor": LogitsProcessorList([Force(forced, prompt_len)])}
        result = model.generate(**gpu_inputs, **settings, **extra)
        ids = result.sequences[0, prompt_len:].cpu()
        if forced is None:
            forced = ids
        assert torch.equal(ids, forced), (ids, forced)
        tensors[key] = torch.stack([s[0] for s in result.logits]).float().cpu().contiguous()
        del model, result
        gc.collect()
        torch.cuda.empty_cache()
    tensors["forced_ids"] = forced
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "reference.safetensors"))
    f32, b16 = tensors["logits_fp32"], tensors["logits_bf16"]
    err = ((b16 - f32).norm() / f32.norm()).item()
    print(f"real-width {out.name}: {prompt_len} prompt tokens, forced {forced.tolist()[:8]}..., "
          f"transformers bf16 vs fp32 relative error {err:.4g}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer-from", type=Path, required=True, help="a fixture model with Qwen2's vocabulary")
    parser.add_argument("--sizes", nargs="*", default=["3b", "7b"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny widths: checks the script, not the engine")
    parser.add_argument("--full-depth", action="store_true",
                        help="all published layers (36/28 language, 32 vision), not 4 of each")
    args = parser.parse_args()
    global DEVICE, FULL_DEPTH
    DEVICE = args.device
    FULL_DEPTH = args.full_depth
    for size in args.sizes:
        make_dir(args.out / size, size, args.tokenizer_from, args.smoke)
        reference(args.out / size)


if __name__ == "__main__":
    main()

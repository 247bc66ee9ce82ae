"""transformers' device_map="auto" against our planner, per GPU, computed on the CPU (issue 14 item 8).

For each scenario (a model, its GPUs, N frames of one size a step):
  (a) transformers' placement: its device map from scripts/placement/device_map.sh (accelerate
      1.15.0's get_balanced_memory + infer_auto_device_map, max_memory = each card's memory, on the
      meta device), turned into a layer split (each GPU's decoder layers, the vision tower's GPU) and
      priced by our memory model: `qwenvl-cli --plan --layers ... --json`. Its activations and KV
      cache are therefore modelled as ours are (paged KV cache, our working sets): the tables
      compare placements, not the two engines' execution.
  (b) our plan on the same devices: `qwenvl-cli --plan --json`, placement auto, and where auto
      takes replicas (the whole model on every GPU, each with its own N frames) also our pipeline,
      the same kind of placement as transformers' split.
and prints one Markdown table per scenario, then for each model, card and frame size the most
frames a step that each placement holds (transformers' split; our pipeline search; our replicas),
the table one frame past transformers' most where ours still fits, and what our error says would
fit one frame past every placement's most.
Predicted tokens/s come from our time model at the H100 profile's rates (the 12 and 24 GiB cards'
own rates would scale every placement alike).

N frames at W x H: N requests in one step, each one frame and a short question, as the qwenvl
element batches frames (one sequence per frame). The frame's size after the processor's resize is
transformers' smart_resize (which engine/preprocessing/smart_resize reproduces, tests/preprocessing/
test_smart_resize.cpp), so PlanRequest gets max_pixels = that size, max_batch = images_per_step = N,
max_context = its tokens + 64 (the planner's prompt text, runtime/placement/workload.h) + 128 new
tokens, and prefill chunks of all N prompts at once (as transformers' generate prefills a batch).

Budgets: a GPU's budget is its memory less the 1 GiB our planner keeps for the CUDA context when a
card has no cap (runtime/placement/device_budget.cpp); transformers is given max_memory = the card's
whole memory, as a user writes it. Everything is predicted from config.json values (the published
shapes of scripts/bench/write_random_model.py); nothing is loaded and no GPU is touched.

  scripts/placement/compare.sh [--build DIR] [--only NAME]   (NAME: a scenario's model, e.g. 7B)
"""
import argparse
import datetime
import json
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import write_random_model  # noqa: E402  the published shapes

GiB = 2**30
MiB = 2**20
CUDA_CONTEXT = 1 * GiB  # what the planner keeps for the CUDA context on a card without a cap
PROMPT_TEXT_TOKENS = 64  # kTextTokensPerPrompt, runtime/placement/workload.h
NEW_TOKENS = 128  # PlanRequest::new_tokens' default
PATCH, MERGE, MIN_PIXELS, MAX_PIXELS = 14, 2, 3136, 12845056  # the published preprocessor_config.json

# Cards: their memory as nvidia-smi reports it (memory.total) or as the issue names it, and the
# device-list entry that gives our planner that memory less the CUDA context.
CARDS = {
    "24GiB": dict(label="24 GiB", bytes=24 * GiB, entry="cuda:{i}=23GiB"),
    "12GiB": dict(label="12 GiB", bytes=12 * GiB, entry="cuda:{i}=11GiB"),
    "h100": dict(label="H100 80 GB (81559 MiB)", bytes=81559 * MiB, entry="cuda:{i}"),
    "h200": dict(label="H200 141 GB (143771 MiB)", bytes=143771 * MiB, entry="cuda:{i}@h200"),
}
FRAMES = {"448x448": (448, 448), "1280x720": (1280, 720)}

# (model, shape, card, GPUs, frame sizes, frame counts): issue 14 item 8.
SCENARIOS = [
    ("7B", "7b", "24GiB", 2, ["448x448", "1280x720"], [1, 4, 16]),
    ("3B", "3b", "12GiB", 2, ["1280x720"], [16]),
    ("32B", "32b", "h100", 2, ["1280x720"], [16]),
    ("72B", "72b", "h100", 2, ["1280x720"], [16]),
    ("72B", "72b", "h100", 4, ["1280x720"], [16]),
    ("72B", "72b", "h200", 2, ["1280x720"], [16]),
]
MOST_FRAMES = 4096  # the bisection's ceiling for "most frames a step"


def gib(n: int) -> str:
    return f"{n / GiB:.2f}"


def write_model(shape: str, out: Path) -> Path:
    """config.json as transformers writes it for the published shape, and the published processor config."""
    out.mkdir(parents=True, exist_ok=True)
    write_random_model.config_for(shape, None, None).save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps({
        "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "patch_size": PATCH, "temporal_patch_size": 2,
        "merge_size": MERGE, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor"}, indent=2))
    return out


def frame_tokens(size: str) -> tuple[int, int]:
    """The frame's pixels and image tokens after the processor's resize."""
    w, h = FRAMES[size]
    rh, rw = smart_resize(h, w, factor=PATCH * MERGE, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return rh * rw, rh * rw // (PATCH * MERGE) ** 2


def workload_args(size: str, frames: int) -> list[str]:
    pixels, tokens = frame_tokens(size)
    return ["--max-batch", str(frames), "--images-per-step", str(frames), "--max-pixels", str(pixels),
            "--max-context", str(tokens + PROMPT_TEXT_TOKENS + NEW_TOKENS),
            "--prefill-chunk", str(frames * (tokens + PROMPT_TEXT_TOKENS))]


def transformers_map(shape: str, card: dict, gpus: int) -> dict:
    budgets = ",".join(f"{card['bytes'] // MiB}MiB" for _ in range(gpus))
    run = subprocess.run([str(ROOT / "scripts/placement/device_map.sh"), "--shape", shape, "--max-memory", budgets],
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def as_split(tmap: dict, layers: int, gpus: int, tied_bytes: int) -> tuple[str, int, list[str]]:
    """transformers' map as --layers / --vision-on, and what the split's rules change of it."""
    where = tmap["device_map"]
    by_gpu: dict[int, list[int]] = {g: [] for g in range(gpus)}
    modules_on = set(where.values())
    if not modules_on <= {str(g) for g in range(gpus)}:
        raise SystemExit(f"transformers places modules on {sorted(modules_on)}: offloading is not priced here")
    for module, device in where.items():
        m = re.fullmatch(r"model\.language_model\.layers\.(\d+)", module)
        if m:
            by_gpu[int(device)].append(int(m.group(1)))
        elif module.startswith("model.language_model.layers."):
            raise SystemExit(f"transformers splits a decoder layer ({module}): not a layer split")
    visual = {d for k, d in where.items() if k == "model.visual" or k.startswith("model.visual.")}
    if len(visual) != 1:
        raise SystemExit(f"transformers splits the vision tower over GPUs {sorted(visual)}")
    vision = int(visual.pop())
    items, notes, next_layer = [], [], 0
    for g in range(gpus):
        got = sorted(by_gpu[g])
        if not got:
            if g != vision:
                raise SystemExit(f"transformers leaves GPU {g} empty: not a pipeline over every GPU")
            items.append("-")
            continue
        if got != list(range(next_layer, next_layer + len(got))):
            raise SystemExit(f"transformers' layers on GPU {g} are not the next contiguous range: {got}")
        items.append(f"{got[0]}-{got[-1]}")
        next_layer = got[-1] + 1
    first_gpu = next(g for g in range(gpus) if 0 in by_gpu[g])
    last_gpu = next(g for g in range(gpus) if layers - 1 in by_gpu[g])
    embed = int(where["model.language_model.embed_tokens"])
    head = int(where.get("lm_head", where.get("model.language_model.norm")))
    if embed != first_gpu:
        notes.append(f"transformers puts the embeddings on GPU {embed}, not with layer 0 on GPU {first_gpu}; "
                     f"priced with layer 0")
    if head != last_gpu:
        copy = f" (a copy of the tied embedding matrix, {gib(tied_bytes)} GiB)" if tied_bytes else ""
        notes.append(f"transformers runs the LM head on GPU {head}"
                     f"{' with the embeddings it is tied to' if tied_bytes and head == embed else ''}, not with the "
                     f"last layer on GPU {last_gpu}; priced with the last layer, as a pipeline runs it{copy}")
    return ",".join(items), vision, notes


def plan(cli: str, model: Path, devices: str, extra: list[str]) -> tuple[dict | None, str]:
    """The plan as JSON (None where nothing fits) and stderr's line."""
    run = subprocess.run([cli, "--model", str(model), "--devices", devices, "--plan", "--json", *extra],
                         capture_output=True, text=True)
    if run.returncode not in (0, 2) or (run.returncode == 2 and not run.stdout.strip()):
        if run.returncode == 2:
            return None, run.stderr.strip()
        raise SystemExit(f"qwenvl-cli failed ({run.returncode}): {run.stderr.strip()}")
    return json.loads(run.stdout), run.stderr.strip()


def holds(d: dict) -> str:
    if d["replica"] >= 0:
        return f"whole model (replica {d['replica']})"
    parts = []
    if d["vision_tower"]:
        parts.append("vision tower")
    if d["embeddings"]:
        parts.append("embeddings")
    if d["end_layer"] > d["first_layer"]:
        parts.append(f"layers {d['first_layer']}-{d['end_layer'] - 1}")
    if d["lm_head"]:
        parts.append("LM head")
    return " + ".join(parts) or "nothing"


def verdict(d: dict) -> str:
    free = d["budget_bytes"] - d["memory"]["total"]
    return f"fits, {gib(free)} free" if free >= 0 else f"**over by {gib(-free)}**"


def rows(name: str, p: dict) -> list[str]:
    out = []
    for g, d in enumerate(p["devices"]):
        m = d["memory"]
        out.append(f"| {name} | {g} | {holds(d)} | {gib(m['weights'])} | {gib(m['kv_cache'])} | "
                   f"{gib(m['activations'])} | {gib(m['workspace'])} | {gib(m['margin'])} | {gib(m['total'])} | "
                   f"{gib(d['budget_bytes'])} | {verdict(d)} |")
    return out


def most_frames(fits) -> int:
    """The largest N in [1, MOST_FRAMES] with fits(N) (0 if none), fits taken as monotone."""
    if not fits(1):
        return 0
    low, high = 1, MOST_FRAMES
    if fits(high):
        return high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


class Scenario:
    """One model on its GPUs: transformers' split of it, and the plans for N frames of one size."""

    def __init__(self, cli: str, tmp: Path, model_name: str, shape: str, card: dict, gpus: int):
        self.cli, self.model_name, self.card, self.gpus = cli, model_name, card, gpus
        self.model = write_model(shape, tmp / f"Qwen2.5-VL-{model_name}-Instruct")
        config = write_random_model.config_for(shape, None, None)
        text = config.text_config
        tied_bytes = text.vocab_size * text.hidden_size * 2 if config.tie_word_embeddings else 0
        self.devices = ",".join(card["entry"].format(i=i) for i in range(gpus))
        tmap = transformers_map(shape, card, gpus)
        self.layers, self.vision, self.notes = as_split(tmap, text.num_hidden_layers, gpus, tied_bytes)
        self.split = ["--layers", self.layers, "--vision-on", str(self.vision)]
        self.accelerate = ", ".join(f"GPU {g} {gib(b)}" for g, b in sorted(tmap["weight_bytes"].items()))

    def plan(self, extra: list[str]) -> tuple[dict | None, str]:
        return plan(self.cli, self.model, self.devices, extra)

    def table(self, size: str, frames: int, heading: str) -> None:
        """transformers' split priced, our plan (and our pipeline where auto takes replicas), per GPU."""
        pixels, tokens = frame_tokens(size)
        work = workload_args(size, frames)
        theirs, _ = self.plan(self.split + work)
        ours, why_not = self.plan(work)
        staged = self.plan(work + ["--placement", "pipeline"])[0] if ours and ours["mode"] == "replicas" else None
        print(f"### Qwen2.5-VL-{self.model_name} bf16 on {self.gpus} x {self.card['label']}: {frames} frame"
              f"{'s' if frames > 1 else ''} of {size} a step{heading}\n")
        print(f"{frames} x {pixels} pixels ({tokens} image tokens each), max batch {frames}, max context "
              f"{tokens + PROMPT_TEXT_TOKENS + NEW_TOKENS}, prefill chunk {frames * (tokens + PROMPT_TEXT_TOKENS)} "
              f"tokens. transformers' map: `--layers {self.layers} --vision-on {self.vision}` (parameter bytes as "
              f"accelerate counts them: {self.accelerate}).\n")
        print("| placement | GPU | holds | weights | KV cache | activations | workspace | margin | total | budget "
              "| verdict |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for line in rows("transformers' device_map", theirs):
            print(line)
        if ours:
            for line in rows(f"ours ({ours['mode']})", ours):
                print(line)
        else:
            print("| ours | - | nothing fits | | | | | | | | see below |")
        if staged:
            for line in rows("ours (pipeline)", staged):
                print(line)
        print()
        speeds = [("transformers' split", theirs), (f"ours ({ours['mode']})" if ours else "", ours),
                  ("ours (pipeline)", staged)]
        print("- predicted generated tokens/s: " +
              ", ".join(f"{name} {p['tokens_per_second']:.0f}" for name, p in speeds if p) + ".")
        if ours and ours["mode"] == "replicas":
            print(f"- ours (replicas): every GPU runs the whole model on its own {frames} frame"
                  f"{'s' if frames > 1 else ''} ({frames * self.gpus} a step in all); auto takes it for its tokens/s.")
        for note in self.notes:
            print(f"- {note}.")
        if not ours:
            print(f"- ours: `{why_not}`")
        print()

    def edges(self, size: str) -> None:
        """The most frames a step each placement holds; past transformers' most, the first step only ours holds,
        and past both, what our error says would fit."""
        def fits(extra):
            return lambda n: (lambda p: p is not None and p["fits"])(self.plan(extra + workload_args(size, n))[0])
        theirs = most_frames(fits(self.split + ["--placement", "pipeline"]))
        ours = most_frames(fits(["--placement", "pipeline"]))
        each = most_frames(fits(["--placement", "replicas"]))
        replicas = f"{self.gpus} x {each} = {self.gpus * each}" if each else "none (the model does not fit one card)"
        ceiling = " (the ceiling searched)" if MOST_FRAMES in (theirs, ours, each) else ""
        print(f"**Most frames of {size} a step on {self.gpus} x {self.card['label']}** ({self.model_name}): "
              f"transformers' split {theirs}, our pipeline {ours}, our replicas {replicas}{ceiling}.\n")
        if theirs < ours < MOST_FRAMES:
            self.table(size, theirs + 1, ": past transformers' split, within ours")
        most = max(theirs, ours, self.gpus * each)
        if most < MOST_FRAMES:
            past, why_not = self.plan(workload_args(size, most + 1))
            if past is None:
                print(f"At {most + 1} frames of {size} a step neither fits; ours says: `{why_not}`\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", type=Path, default=ROOT / "build")
    parser.add_argument("--only", help="one model: 3B, 7B, 32B or 72B")
    args = parser.parse_args()
    cli = str((args.build / "tools" / "qwenvl-cli").resolve())
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    command = " ".join(shlex.quote(a) for a in ["scripts/placement/compare.sh", *sys.argv[1:]])
    print(f"Computed {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} "
          f"({cpu}, no GPU), commit {commit}: `{command}`\n")
    print("Columns in GiB (2^30 bytes). budget: the card's memory less 1 GiB for the CUDA context. "
          "Predictions of our memory model, not measurements.\n")
    with tempfile.TemporaryDirectory() as tmp:
        for model_name, shape, card_key, gpus, sizes, counts in SCENARIOS:
            if args.only and args.only != model_name:
                continue
            scenario = Scenario(cli, Path(tmp), model_name, shape, CARDS[card_key], gpus)
            for size in sizes:
                for frames in counts:
                    scenario.table(size, frames, "")
                scenario.edges(size)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The boundaries of docs/ARCHITECTURE.md, checked on every source file's #include lines.

- kernels/ know nothing of the engine: of engine/include they may use only the leaf header
  qwenvl/pixel_format.h, and nothing of the engine's parts.
- The engine includes no GStreamer header; engine/nn includes nothing of runtime/.
- gst-plugin/ reaches the engine through its public headers (qwenvl/...) only, never the kernels.
- tools/ use the public headers only, except the three benches that measure one part by name.
- remote/ (the remote engine, no libtorch) uses the engine's public headers and, of kernels/, only
  the header-only pixel arithmetic.

Prints each breach as FILE:LINE: RULE and exits 1 if there is any.
usage: check_boundaries.py SOURCE_ROOT
"""
import pathlib
import re
import sys

ENGINE_PARTS = ("model/", "tokenizer/", "chat/", "preprocessing/", "nn/", "runtime/", "structured/")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
# tools that time one part of the engine by design (tools/meson.build says so for each)
# kernels/ headers without ATen: videoconvert's YUV -> RGB arithmetic, shared with the remote engine
REMOTE_KERNEL_HEADERS = ("kernels/frame_preparation_math.h", "kernels/videoconvert_yuv.h")
PART_BENCHES = {"tools/qwenvl-tokenizer-bench.cpp": ("tokenizer/",), "tools/qwenvl-kernel-bench.cpp": ("kernels/",),
                "tools/qwenvl-mask-bench.cpp": ("runtime/", "structured/", "tokenizer/", "kernels/"),
                "tools/qwenvl-vision-bench.cpp": ("model/", "nn/", "kernels/")}


def breaches(rel: str, header: str):
    engine_part = header.startswith(ENGINE_PARTS)
    if rel.startswith("kernels/"):
        if engine_part or (header.startswith("qwenvl/") and header != "qwenvl/pixel_format.h"):
            yield "kernels include nothing of the engine (only the leaf header qwenvl/pixel_format.h)"
    if rel.startswith("engine/"):
        if header.startswith(("gst/", "glib")):
            yield "the engine includes no GStreamer or GLib header"
        if rel.startswith("engine/nn/") and header.startswith("runtime/"):
            yield "engine/nn includes nothing of runtime/"
    if rel.startswith("gst-plugin/") and (engine_part or header.startswith("kernels/")):
        yield "the element reaches the engine through qwenvl/ public headers only"
    if rel.startswith("remote/") and (engine_part or (header.startswith("kernels/") and header not in REMOTE_KERNEL_HEADERS)):
        yield "the remote engine uses the engine's public headers and kernels/' header-only pixel arithmetic only"
    if rel.startswith("tools/") and (engine_part or header.startswith("kernels/")):
        if not header.startswith(PART_BENCHES.get(rel, ())):
            yield "tools use the engine's public headers only"


def main() -> int:
    root = pathlib.Path(sys.argv[1]).resolve()
    found = 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.suffix not in {".h", ".c", ".cpp", ".cu", ".cuh"} or rel.startswith(("build", ".")):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            for rule in breaches(rel, m.group(1)):
                print(f"{rel}:{number}: {rule} (includes {m.group(1)})")
                found += 1
    print(f"boundaries: {found} breach(es)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

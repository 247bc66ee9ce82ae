#!/usr/bin/env python3
"""The files ninja must build for some of a meson build's tests: each named test's executable and
the targets it depends on (plugins, tools it starts), relative to the build directory.
   scripts/test_targets.py BUILD_DIR TEST_NAME..."""
import json
import os
import subprocess
import sys

build, names = sys.argv[1], set(sys.argv[2:])
intro = lambda what: json.loads(subprocess.check_output(["meson", "introspect", build, what]))
targets = {t["id"]: t for t in intro("--targets")}
by_file = {f: t for t in targets.values() for f in t["filename"]}
wanted = set()
for test in intro("--tests"):
    if test["name"] not in names:
        continue
    names.discard(test["name"])
    if test["cmd"][0] in by_file:
        wanted.update(by_file[test["cmd"][0]]["filename"])
    for dep in test.get("depends", []):
        if dep in targets:
            wanted.update(targets[dep]["filename"])
if names:
    sys.exit("test_targets: no test named " + ", ".join(sorted(names)))
root = os.path.abspath(build)
for f in sorted(wanted):
    print(os.path.relpath(f, root))

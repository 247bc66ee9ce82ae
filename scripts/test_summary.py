"""Prints the test cases of a meson test run as one closing line: 'N passed, N failed, N skipped'.

meson counts executables; each GoogleTest executable holds many cases, and the skipped ones (the
CUDA kernel cases on a machine without a GPU) must show.
  test_summary.py BUILD_DIR/meson-logs/testlog.json
"""
import json
import re
import sys

passed = failed = skipped = 0
for line in open(sys.argv[1], encoding="utf-8"):
    run = json.loads(line)
    out = run.get("stdout", "")
    counts = {m.group(1): int(m.group(2))
              for m in re.finditer(r"^\[\s+(PASSED|FAILED|SKIPPED)\s+\] (\d+) tests?", out, re.M)}
    if not counts:  # not a GoogleTest log: count the executable itself
        counts = {"PASSED": 1} if run.get("result") == "OK" else {"FAILED": 1}
    if run.get("result") not in ("OK", "SKIP") and "FAILED" not in counts:
        counts["FAILED"] = 1  # crashed or timed out before GoogleTest could report
    passed += counts.get("PASSED", 0)
    failed += counts.get("FAILED", 0)
    skipped += counts.get("SKIPPED", 0)
print(f"{passed} passed, {failed} failed, {skipped} skipped")

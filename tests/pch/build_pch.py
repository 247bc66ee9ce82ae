#!/usr/bin/env python3
"""Precompiles pch/aten.h once for every test executable that includes ATen (tests/pch/meson.build).

Meson precompiles a header per target (cpp_pch), and each test executable is one source: a header
per target would cost as much as it saves. GCC uses a precompiled header only when it was built with
the options of the source that uses it, so this takes them from the build's own compile command for
tests/pch/reference.cpp, a source with the test executables' dependencies, and compiles the header
with them. A source whose options differ still compiles, from the header's text (GCC's -Winvalid-pch
then says so in the build log).

  build_pch.py BUILD_ROOT HEADER OUT_HEADER OUT_GCH DEPFILE
"""
import json
import os
import shlex
import shutil
import subprocess
import sys


def main():
    build_root, header, out_header, out_gch, depfile = sys.argv[1:6]
    with open(os.path.join(build_root, "compile_commands.json")) as f:
        commands = json.load(f)
    reference = next((c for c in commands if c["file"].replace(os.sep, "/").endswith("tests/pch/reference.cpp")), None)
    if reference is None:
        sys.exit("build_pch: tests/pch/reference.cpp is not in compile_commands.json")
    args = reference["arguments"] if "arguments" in reference else shlex.split(reference["command"])
    kept, skip = [], False
    for arg in args:  # the compiler and its options, without the source, output and dependency file
        if skip:
            skip = False
        elif arg in ("-o", "-c", "-MF", "-MQ", "-MT"):
            skip = True
        elif arg != "-MD" and arg != reference["file"]:
            kept.append(arg)
    # A copy of the header beside its precompiled form: GCC looks for NAME.gch next to the NAME it
    # includes. The header is compiled from its source (the copy in the depfile would depend on itself).
    shutil.copyfile(header, out_header)
    command = kept + ["-x", "c++-header", os.path.abspath(header), "-o", os.path.abspath(out_gch),
                      "-MD", "-MF", os.path.abspath(depfile), "-MQ", os.path.abspath(out_gch)]
    sys.exit(subprocess.call(command, cwd=reference["directory"]))


if __name__ == "__main__":
    main()

// Built by no default target: its compile command (compile_commands.json) gives
// tests/pch/build_pch.py the options of the test executables that include ATen. An executable, as
// they are (their -fPIE, not a library's -fPIC).
#include <gtest/gtest.h>

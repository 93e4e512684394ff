# Included by llama.cpp's own project() (CMAKE_PROJECT_llama.cpp_INCLUDE, see the Makefile's
# `llama` target): llama-cpp-python forces llama.cpp's "common" utility library on, but its
# Python bindings and OpenAI-compatible server load only libllama and ggml. A normal variable
# shadows the forced cache entry (policy CMP0077), so "common" is neither built nor installed,
# which saves more than half of the compile on a 2-core CI machine.
set(LLAMA_BUILD_COMMON OFF)

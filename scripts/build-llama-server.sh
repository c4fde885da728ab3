#!/usr/bin/env bash
# Builds llama.cpp's OpenAI-compatible `llama-server` (CPU) for the tests of Quarry's server
# backend (`[llm] url`) and for users who want to serve the model apart from Quarry. The
# source is the llama.cpp tree inside the `llama-cpp-python` source package, fetched from the
# Python package registry by name and version and checked by SHA-256.
#
#   scripts/build-llama-server.sh        prints the path of the built binary
#
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/quarry/llama-server-<version>; a second run is instant.
# CPU code is built for AVX2 (not -march=native: on some virtual machines the detected AVX-512
# instructions trap). On a machine with CUDA, add -DGGML_CUDA=ON to the cmake line for a GPU server.
set -euo pipefail

version=0.3.36
sha=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
dest="${XDG_CACHE_HOME:-$HOME/.cache}/quarry/llama-server-$version"
bin="$dest/bin/llama-server"
die() { echo "build-llama-server: error: $*" >&2; exit 1; }

if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
command -v cmake >/dev/null || die "cmake is missing: run 'make deps' (or apt-get install cmake)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --no-binary=:all: --disable-pip-version-check \
  -d "$work" "llama-cpp-python==$version" >&2 \
  || die "could not download llama-cpp-python==$version with pip; check the network"
archive="$work/llama_cpp_python-$version.tar.gz"
got="$(sha256sum "$archive" | cut -d' ' -f1)"
[ "$got" = "$sha" ] || die "checksum mismatch for $(basename "$archive"): expected $sha, got $got"
tar xzf "$archive" -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
echo "build-llama-server: building llama-server (a few minutes)" >&2
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON >&2
cmake --build "$work/build" --target llama-server -j "$(nproc)" >&2
mkdir -p "$dest/bin"
cp "$work/build/bin/llama-server" "$bin.partial" && mv "$bin.partial" "$bin"
echo "$bin"

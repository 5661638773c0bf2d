#!/usr/bin/env bash
# Debian packages the test suite needs beyond npm: Mesa's EGL/GLES and llvmpipe, on which Dawn's
# OpenGL ES backend gives the WebGPU tests a software adapter; and clang and lld, the compiler and
# linker of the WebAssembly kernel's SIMD128 module (clang 14 on Debian 12), and clang-19 and
# lld-19, those of its relaxed SIMD module, with which test/distill/kernel-build.test.ts checks the
# committed modules against their C source. Installs only what is missing.
set -euo pipefail
packages=(libegl1 libgles2 libgl1-mesa-dri clang lld clang-19 lld-19)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

#!/usr/bin/env bash
# Installs the Debian packages qcoder builds against (idempotent: skips what is present).
set -euo pipefail
pkgs=(build-essential cmake ninja-build nlohmann-json3-dev libgtest-dev googletest libhwy-dev
      clang-14 libclang-rt-14-dev
      openmpi-bin libopenmpi-dev
      chromium chromium-driver
      python3 python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 may come from elsewhere (pyenv); a working interpreter with venv is enough.
if python3 -c "import venv, ensurepip" 2>/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ $p == python3 || $p == python3-venv ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if ((${#missing[@]} == 0)); then exit 0; fi
echo "install-deps: installing ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) != 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

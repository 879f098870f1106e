#!/usr/bin/env bash
# Gradescope autograder setup (runs once, as root, when the image is built). Put this file,
# run_autograder, your assignment.toml and a bpttcheck wheel at the top of the autograder zip.
#
# BPTTCHECK_SOURCE is what pip installs bpttcheck from. Leave it empty to install the
# bpttcheck-*.whl you put in the zip (build it in a bpttcheck checkout with
# `python -m pip wheel --no-deps -w dist .`; Gradescope unpacks the zip into
# /autograder/source). Or set it to a requirement pip understands, such as
# "bpttcheck @ git+https://<your course's git server>/<path to bpttcheck>.git@<tag>".
BPTTCHECK_SOURCE="${BPTTCHECK_SOURCE:-}"
SOURCE_DIR="${SOURCE_DIR:-/autograder/source}"   # where Gradescope unpacked the zip
VENV="${VENV:-/opt/bpttcheck}"                   # run_autograder runs $VENV/bin/bpttcheck
UV_DIR="${UV_DIR:-/opt/uv}"                       # uv and its Python, when they are needed
set -euo pipefail

# gcc: C submissions are compiled by bpttcheck; curl: fetches uv when it is needed
apt-get update -qq
apt-get install -y -qq gcc curl ca-certificates >/dev/null

# bpttcheck needs Python >= 3.11. Gradescope's Ubuntu images ship 3.8 (20.04), 3.10 (22.04)
# or 3.12 (24.04). The system's Python is used when it is new enough; otherwise uv installs
# a standalone CPython 3.11. uv rather than the deadsnakes PPA: the PPA builds only for the
# Ubuntu releases it currently supports (and needs add-apt-repository), while uv's Python
# runs on any of Gradescope's images and lands in a folder this script chooses.
if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  apt-get install -y -qq python3-venv >/dev/null
  python3 -m venv "$VENV"
else
  # UV_UNMANAGED_INSTALL: uv goes to $UV_DIR/uv and leaves shell profiles alone
  export UV_UNMANAGED_INSTALL="$UV_DIR" UV_PYTHON_INSTALL_DIR="$UV_DIR/python"
  curl -LsSf https://astral.sh/uv/install.sh | sh
  "$UV_DIR/uv" python install 3.11
  "$UV_DIR/uv" venv --seed --python 3.11 "$VENV"   # --seed: with pip, like python -m venv
fi
"$VENV/bin/python" -c 'import sys; assert sys.version_info >= (3, 11), sys.version'

if [ -z "$BPTTCHECK_SOURCE" ]; then
  shopt -s nullglob
  wheels=("$SOURCE_DIR"/bpttcheck-*.whl)
  if [ "${#wheels[@]}" -ne 1 ]; then
    echo "setup.sh: found ${#wheels[@]} bpttcheck-*.whl in $SOURCE_DIR, need exactly one: put" \
         "one in the autograder zip, or set BPTTCHECK_SOURCE at the top of this file" >&2
    exit 1
  fi
  BPTTCHECK_SOURCE="${wheels[0]}"
fi
"$VENV/bin/pip" install -q "$BPTTCHECK_SOURCE"
"$VENV/bin/bpttcheck" --version   # the build log shows which bpttcheck the class is graded by

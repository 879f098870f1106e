#!/usr/bin/env bash
# Gradescope autograder setup (runs once when the image is built). Put this file,
# run_autograder and your assignment.toml at the top of the autograder zip.
set -euo pipefail
apt-get update -qq && apt-get install -y -qq gcc python3-venv >/dev/null   # gcc: C submissions
python3 -m venv /opt/bpttcheck
# where your course keeps bpttcheck: a git URL, or a wheel placed in the autograder zip
/opt/bpttcheck/bin/pip install -q "bpttcheck @ git+https://github.com/bpttcheck/bpttcheck"

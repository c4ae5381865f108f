#!/usr/bin/env bash
# Build every e2e image into an OCI archive (cached by a hash of its inputs) and
# print one "REFERENCE ARCHIVE" line per image. Arguments go to build.py, e.g.
#   e2e/images/build.sh                                   # build all
#   e2e/images/build.sh --only pause --only openfiles     # build some
#   e2e/images/build.sh import --address SOCKET           # build, then ctr import
#   e2e/images/build.sh check                             # import and run in a throwaway containerd
# Any Python 3.11+ runs it (standard library only; set PYTHON to choose one).
# The OpenFiles image needs root, debootstrap and a Python 3.11 with pip
# somewhere (see README.md).
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "${BASH_SOURCE[0]}")/build.py" "$@"

#!/usr/bin/env bash
# How cost grows with the work (see docs/performance.md). Installs nothing: it names what is
# missing. Builds the release binary, then runs benches/scaling.py with any arguments given
# (--smoke for a quick run with tiny sizes). Needs /dev/shm and about 9 GB of free disk.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x /usr/bin/time ] || { echo "missing: /usr/bin/time; install it with: apt-get install time" >&2; exit 1; }

binary=""
for arg in "$@"; do [ "$arg" = "--binary" ] && binary=given; done
if [ -z "$binary" ]; then
  cargo build --release --locked
  set -- --binary target/release/gotorrent-http "$@"
fi
exec python3 benches/scaling.py "$@"

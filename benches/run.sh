#!/usr/bin/env bash
# The side-by-side benchmark (see docs/performance.md). Installs nothing: it names what is
# missing. Builds the release binary, then runs benches/run.py with any arguments given
# (--smoke for a quick run with tiny sizes; --size-mib, --rounds, --seconds to change the load).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
export PATH="$HOME/.cargo/bin:$PATH"
for tool in nginx wrk aria2c opentracker curl openssl redis-server garage; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x /usr/bin/time ] || missing+=(/usr/bin/time)
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}; install them with: apt-get install nginx wrk aria2 opentracker curl openssl time redis-server, and cargo install garage --locked" >&2
  exit 1
fi

binary="" previous=""
for arg in "$@"; do [ "$previous" = "--binary" ] && binary="$arg"; previous="$arg"; done
if [ -z "$binary" ]; then
  cargo build --release --locked --bin gotorrent-http --example empty_app
  set -- --binary target/release/gotorrent-http "$@"
else
  # The floor case runs examples/empty_app from beside the given binary (a test build's is
  # debug; `cargo test` keeps its own copy of examples under a hashed name).
  case "$(basename "$(dirname "$binary")")" in
    release) cargo build --release --locked --example empty_app ;;
    debug) cargo build --locked --example empty_app ;;
  esac
fi
exec python3 benches/run.py "$@"

#!/usr/bin/env bash
# A folder of many small files (docs/performance.md, "Folders of many small files"): 10,000
# files of 4 KiB in 100 directories. Times `create` (16 KiB and 1 MiB pieces), then downloads
# the folder three times each with ours from the web seed (/files), ours from /chunks and aria2c
# from the web seed, each round into fresh directories (deleting 10,000 files just before
# creating as many makes ext4's inode allocator, and so every client, several times slower),
# and checks every tree.
# Needs aria2c, curl and /usr/bin/time; builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in aria2c curl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
cargo build --release --locked
BIN=$PWD/target/release/gotorrent-http
W=$(mktemp -d /tmp/gotorrent-folder-bench.XXXX)
cd "$W"
mkdir -p data/F
python3 - <<'PY'
import os
for d in range(100):
    os.makedirs(f"data/F/dir {d:02}", exist_ok=True)
    for f in range(100):
        with open(f"data/F/dir {d:02}/file {f:02}.bin", "wb") as out:
            out.write(os.urandom(4096))
PY
sync
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "create, 16 KiB pieces:"
/usr/bin/time -f "  %e s wall, %M KiB peak RSS" "$BIN" create data/F --piece-length 16384 \
  --web-seed "http://127.0.0.1:$PORT/files/" -o f16.torrent >/dev/null
echo "create, 1 MiB pieces (each 4 KiB file is padded to a whole piece for SHA-1):"
/usr/bin/time -f "  %e s wall, %M KiB peak RSS" "$BIN" create data/F -o f1m.torrent >/dev/null
GOTORRENT__STORAGE__DATA_DIR=data GOTORRENT__STORAGE__STATE_DIR=state GOTORRENT__LOG__LEVEL=warn \
  GOTORRENT__SEEDER__PIECE_LENGTH=16384 "$BIN" serve --bind "127.0.0.1:$PORT" >server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$W"' EXIT
until curl -sf "localhost:$PORT/torrents" | grep -q '"name":"F"'; do sleep 0.2; done
V2=$(curl -s "localhost:$PORT/torrents" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["info_hash_v2"])')
for round in 1 2 3; do
  echo "round $round (16 KiB pieces, one per file)"
  /usr/bin/time -f "  ours, web seed:   %e s wall, %M KiB peak RSS" \
    "$BIN" download f16.torrent -o "ours$round" --quiet
  /usr/bin/time -f "  ours, /chunks:    %e s wall, %M KiB peak RSS" \
    "$BIN" download "http://127.0.0.1:$PORT/torrents/$V2" -o "native$round" --quiet
  /usr/bin/time -f "  aria2c, web seed: %e s wall, %M KiB peak RSS" \
    aria2c --enable-dht=false --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false \
      --seed-time=0 --summary-interval=0 --console-log-level=error --file-allocation=none \
      --dir="aria$round" f16.torrent >/dev/null
  diff -rq data/F "ours$round/F" && diff -rq data/F "native$round/F" \
    && diff -rq data/F "aria$round/F" -x .pad && echo "  all three trees equal the source"
done

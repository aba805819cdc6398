#!/usr/bin/env python3
"""Side-by-side benchmark of gotorrent-http against nginx, curl, aria2c, opentracker and openssl.

Everything runs on 127.0.0.1 with free ports, on one file. Each pair alternates ROUNDS times and
the median ratio (ours / reference) is reported, because shared machines are noisy. Called by
benches/run.sh, which checks the tools and builds the release binary.

    run.py --binary target/release/gotorrent-http [--size-mib 1024] [--rounds 3] [--seconds 8]
    run.py --binary ... --smoke          # tiny sizes, one round: proves the benchmark still runs
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "lua")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {url}")


class Procs:
    """Background processes, all stopped at exit."""

    def __init__(self):
        self.procs = []

    def start(self, args, **kw):
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        """Stops one, so it takes no CPU from the cases after it."""
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


# The announce loads create more peers and seeders than the default caps allow (each run adds
# hundreds of thousands within the 120 s peer lifetime); refused announces are cheap 503s or
# failure reasons and would flatter the rate, so the caps are lifted for the benchmark.
NO_CAPS = {"GOTORRENT__TRACKER__MAX_SEEDERS": "100000000", "GOTORRENT__TRACKER__MAX_BITTORRENT_PEERS": "100000000"}


def start_gotorrent(procs, binary, work, name, data_dir, piece_length, tracker=None):
    state = os.path.join(work, f"state-{name}")
    args = [binary, "serve", "--bind", "127.0.0.1:0", "--data-dir", data_dir, "--state-dir", state]
    if tracker:
        args += ["--no-tracker", "--tracker", tracker]
    env = dict(os.environ,
               GOTORRENT__SEEDER__PIECE_LENGTH=str(piece_length),
               GOTORRENT__TRACKER__RATE_LIMIT_PER_SECOND="0",
               # wrk is one client with many connections: the per-client cap would refuse it.
               GOTORRENT__SEEDER__MAX_STREAMS_PER_CLIENT="512",
               GOTORRENT__TRACKER__MAX_PEERS="50",
               GOTORRENT__LOG__LEVEL="warn", **NO_CAPS)
    log = open(os.path.join(work, f"{name}.log"), "w+")
    p = procs.start(args, stderr=log, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        log.seek(0)
        m = re.search(r"listening on port (\d+)", log.read())
        if m:
            break
        if p.poll() is not None:
            raise SystemExit(f"gotorrent-http ({name}) exited; see {log.name}")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{m.group(1)}"
    deadline = time.time() + 300
    while time.time() < deadline:  # hashing the file
        torrents = json.loads(wait_http(f"{url}/torrents"))
        if torrents:
            return url, p.pid, torrents[0]
        time.sleep(0.1)
    raise SystemExit(f"{name} never shared its file")


def start_redis(procs, work):
    """A scratch redis-server (no persistence: the benchmark measures the tracker, not fsync)."""
    port = free_port()
    procs.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", work,
                 "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if time.time() > deadline:
            raise SystemExit("redis-server did not start")
        time.sleep(0.05)


def start_tracker(procs, binary, work, name, redis_url):
    """A tracker-only instance keeping its state in Redis."""
    port = free_port()
    env = dict(os.environ, GOTORRENT__TRACKER__RATE_LIMIT_PER_SECOND="0", GOTORRENT__TRACKER__MAX_PEERS="50",
               GOTORRENT__LOG__LEVEL="warn", GOTORRENT__TRACKER__REDIS_URL=redis_url, **NO_CAPS)
    procs.start([binary, "serve", "--no-seeder", "--bind", f"127.0.0.1:{port}",
                 "--state-dir", os.path.join(work, f"state-{name}")], env=env,
                stderr=open(os.path.join(work, f"{name}.log"), "w"))
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/ready")
    return url


GARAGE_KEY = ("GK" + "a1" * 12, "b2" * 32)


def start_garage(procs, work):
    """A single-node Garage with bucket "bench" readable and writable by GARAGE_KEY; returns
    its S3 endpoint."""
    root = os.path.join(work, "garage")
    os.makedirs(root)
    s3, rpc = free_port(), free_port()
    config = os.path.join(root, "garage.toml")
    with open(config, "w") as f:
        f.write(f"""metadata_dir = "{root}/meta"
data_dir = "{root}/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{'1' * 64}"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
""")
    env = dict(os.environ, RUST_LOG="warn")
    procs.start(["garage", "-c", config, "server"], env=env, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(root, "garage.log"), "w"))

    def cli(*args, check=True):
        out = subprocess.run(["garage", "-c", config, *args], env=env, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise SystemExit(f"garage {args}: {out.stderr}")
        return out

    deadline = time.time() + 30
    while cli("status", check=False).returncode != 0:
        if time.time() > deadline:
            raise SystemExit("garage did not start")
        time.sleep(0.1)
    node = cli("node", "id", "-q").stdout.split("@")[0].strip()
    cli("layout", "assign", "-z", "dc1", "-c", "10G", node)
    cli("layout", "apply", "--version", "1")
    cli("key", "import", "--yes", "-n", "bench", *GARAGE_KEY)
    cli("bucket", "create", "bench")
    cli("bucket", "allow", "--read", "--write", "--owner", "bench", "--key", "bench")
    return f"http://127.0.0.1:{s3}"


def s3_put(endpoint, key, path):
    """Uploads a file with curl's own SigV4 signing."""
    subprocess.run(["curl", "-sf", "--aws-sigv4", "aws:amz:garage:s3", "--user", ":".join(GARAGE_KEY),
                    "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T", path, f"{endpoint}/bench/{key}"],
                   check=True)


def start_s3_seeder(procs, binary, work, endpoint):
    """A seeder-only instance sharing the bench bucket, /files redirecting to presigned URLs."""
    port = free_port()
    env = dict(os.environ, GOTORRENT__STORAGE__BACKEND="s3", GOTORRENT__STORAGE__S3__BUCKET="bench",
               GOTORRENT__STORAGE__S3__ENDPOINT=endpoint, GOTORRENT__STORAGE__S3__REGION="garage",
               GOTORRENT__STORAGE__S3__REDIRECT_FILES="true", AWS_ACCESS_KEY_ID=GARAGE_KEY[0],
               AWS_SECRET_ACCESS_KEY=GARAGE_KEY[1], GOTORRENT__SEEDER__MAX_STREAMS_PER_CLIENT="512",
               GOTORRENT__LOG__LEVEL="warn")
    procs.start([binary, "serve", "--no-tracker", "--bind", f"127.0.0.1:{port}",
                 "--state-dir", os.path.join(work, "state-s3")], env=env,
                stderr=open(os.path.join(work, "s3-seeder.log"), "w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:  # hashing the object
        torrents = json.loads(wait_http(f"{url}/torrents"))
        if torrents:
            return url, torrents[0]
        time.sleep(0.1)
    raise SystemExit("the S3-backed seeder never shared its object")


def range_cache_reads(seeder):
    """The S3 seeder's range cache reads since start, by where the bytes came from."""
    reads = {}
    for line in wait_http(f"{seeder}/metrics").decode().splitlines():
        if line.startswith("gotorrent_range_cache_reads_total{"):
            labels, value = line.rsplit(" ", 1)
            reads[labels.split('"')[1]] = int(float(value))
    return reads


def s3_loads(seeder, torrent, file_len):
    """The S3 case's two loads on the same random 1 MiB pieces, as (URL, pieces.lua env) pairs:
    byte ranges presigned straight from the store, then the S3-backed seeder's /chunks."""
    direct = urllib.parse.urlsplit(presigned(f"{seeder}/files/big.bin"))
    common = {"PIECES": str(torrent["piece_count"]), "PIECE_LEN": str(1 << 20), "FILE_LEN": str(file_len)}
    return [(f"{direct.scheme}://{direct.netloc}", dict(common, MODE="range", TARGET=f"{direct.path}?{direct.query}")),
            (seeder, dict(common, MODE="chunks", TARGET=f"/chunks/{torrent['info_hash_v2']}"))]


def presigned(url):
    """Where a 307 from /files points (a presigned URL of the object store)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None
    try:
        urllib.request.build_opener(NoRedirect).open(url)
    except urllib.error.HTTPError as e:
        if e.code == 307:
            return e.headers["Location"]
        raise
    raise SystemExit(f"{url} did not redirect")


def start_nginx(procs, work, www):
    port = free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; worker_processes 2; pid {work}/nginx.pid; error_log {work}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
  uwsgi_temp_path {work}; scgi_temp_path {work};
  server {{ listen 127.0.0.1:{port}; root {www}; }} }}
""")
    procs.start(["nginx", "-c", conf], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:  # ready when it answers a one-byte range
        try:
            req = urllib.request.Request(f"{url}/big.bin", headers={"Range": "bytes=0-0"})
            urllib.request.urlopen(req, timeout=2).read()
            return url
        except Exception:
            if time.time() > deadline:
                raise SystemExit("nginx did not start")
            time.sleep(0.05)


def start_opentracker(procs, work):
    port = free_port()
    procs.start(["opentracker", "-i", "127.0.0.1", "-p", str(port), "-P", str(free_port()), "-d", work],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return f"http://127.0.0.1:{port}"


def start_empty_app(procs, binary):
    """examples/empty_app.rs, built beside the binary: an actix-web app that does nothing, on
    our accept loops."""
    path = os.path.join(os.path.dirname(binary), "examples", "empty_app")
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path} is missing: build it with cargo build --release --example empty_app")
    p = procs.start([path, "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    m = re.search(r"listening on port (\d+)", p.stdout.readline())
    if not m:
        raise SystemExit("examples/empty_app did not say which port it listens on")
    return f"http://127.0.0.1:{m.group(1)}", p


def wrk(script, url, seconds, connections, env):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url],
                         cwd=LUA, env=dict(os.environ, **env), capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"WRK_JSON (\{.*\})", out.stdout)
    if not m:
        raise SystemExit(f"wrk produced no report: {out.stdout}\n{out.stderr}")
    return json.loads(m.group(1))


def timed(args, cwd=None):
    """(wall seconds, peak RSS KiB) of a command, via /usr/bin/time -v."""
    out = subprocess.run(["/usr/bin/time", "-v"] + args, cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {out.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", out.stderr)
    h, m, s = wall.groups()
    seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    return seconds, rss


def write_random(path, size):
    """`size` random bytes at `path`, written 16 MiB at a time."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n


def sync():
    subprocess.run(["sync"], check=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8, help="wrk run length")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.smoke:
        args.size_mib, args.rounds, args.seconds = 8, 1, 1
    binary = os.path.abspath(args.binary)
    size = args.size_mib * 1024 * 1024
    work = tempfile.mkdtemp(prefix="gotorrent-bench-")
    procs = Procs()
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
               "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "size_bytes": size, "rounds": args.rounds, "wrk_seconds": args.seconds, "cases": {}}
    rows = []

    def record(section, name, ours, reference, unit, higher_is_better, extra=None):
        ratio = statistics.median(ours) / statistics.median(reference)
        results["cases"][f"{section}: {name}"] = {
            "ours": ours, "reference": reference, "unit": unit, "median_ratio": round(ratio, 3),
            "higher_is_better": higher_is_better, **(extra or {})}
        rows.append((section, name, statistics.median(ours), statistics.median(reference), unit, ratio))

    try:
        www = os.path.join(work, "www")
        os.makedirs(www)
        big = os.path.join(www, "big.bin")
        write_random(big, size)
        dirs = {}
        for name in ("one", "small", "two", "three"):
            dirs[name] = os.path.join(work, f"data-{name}")
            os.makedirs(dirs[name])
            os.link(big, os.path.join(dirs[name], "big.bin"))

        nginx = start_nginx(procs, work, www)
        one, one_pid, t_one = start_gotorrent(procs, binary, work, "one", dirs["one"], 1 << 20)
        small, _, t_small = start_gotorrent(procs, binary, work, "small", dirs["small"], 16 << 10)

        # 1. Chunk serving.
        for piece_len, server, torrent in ((1 << 20, one, t_one), (16 << 10, small, t_small)):
            label = "1 MiB" if piece_len == 1 << 20 else "16 KiB"
            common = {"PIECES": str(torrent["piece_count"]), "PIECE_LEN": str(piece_len), "FILE_LEN": str(size)}
            chunks, ranged, ngx = [], [], []
            for _ in range(args.rounds):
                ngx.append(wrk("pieces.lua", nginx, args.seconds, 32, dict(common, MODE="range", TARGET="/big.bin")))
                chunks.append(wrk("pieces.lua", server, args.seconds, 32,
                                  dict(common, MODE="chunks", TARGET=f"/chunks/{torrent['info_hash_v2']}")))
                ranged.append(wrk("pieces.lua", server, args.seconds, 32, dict(common, MODE="range", TARGET="/files/big.bin")))
            for name, runs in ((f"/chunks {label}", chunks), (f"/files Range {label}", ranged)):
                errors = sum(r["errors"] for r in runs)
                record("serve", name + " req/s", [r["rps"] for r in runs], [r["rps"] for r in ngx], "req/s", True,
                       {"ours_p99_ms": [r["p99_ms"] for r in runs], "nginx_p99_ms": [r["p99_ms"] for r in ngx],
                        "ours_GBps": [r["bytes_per_sec"] / 1e9 for r in runs],
                        "nginx_GBps": [r["bytes_per_sec"] / 1e9 for r in ngx], "errors": errors})

        # 1b. Chunks from an S3-backed seeder vs the same byte ranges straight from the store.
        s3 = start_garage(procs, work)
        garage = procs.procs[-1]
        s3_put(s3, "big.bin", big)
        s3_seeder, s3_torrent = start_s3_seeder(procs, binary, work, s3)
        s3_seeder_proc = procs.procs[-1]
        (store, direct_load), (_, via_load) = loads = s3_loads(s3_seeder, s3_torrent, size)
        # Warm-up: both paths once, so neither is measured on a cold store or allocator.
        for url, load in loads:
            wrk("pieces.lua", url, max(1, args.seconds // 2), 32, load)
        via_us, from_store = [], []
        for _ in range(args.rounds):
            from_store.append(wrk("pieces.lua", store, args.seconds, 32, direct_load))
            via_us.append(wrk("pieces.lua", s3_seeder, args.seconds, 32, via_load))
        record("serve", "S3: /chunks 1 MiB vs direct S3 ranges req/s", [r["rps"] for r in via_us],
               [r["rps"] for r in from_store], "req/s", True,
               {"ours_p99_ms": [r["p99_ms"] for r in via_us], "s3_p99_ms": [r["p99_ms"] for r in from_store],
                "errors": sum(r["errors"] for r in via_us) + sum(r["errors"] for r in from_store),
                "range_cache_reads": range_cache_reads(s3_seeder)})
        # Garage keeps working in the background after a large upload (block checks): stop it.
        procs.stop(s3_seeder_proc)
        procs.stop(garage)

        # 2. Download, verified, to disk.
        two, _, _ = start_gotorrent(procs, binary, work, "two", dirs["two"], 1 << 20, tracker=one)
        three, _, _ = start_gotorrent(procs, binary, work, "three", dirs["three"], 1 << 20, tracker=one)
        v2 = t_one["info_hash_v2"]
        deadline = time.time() + 60
        while len(json.loads(wait_http(f"{one}/peers?info_hash={v2}"))["peers"]) < 3:
            if time.time() > deadline:
                raise SystemExit("the extra seeders never announced")
            time.sleep(0.2)
        torrent_file = os.path.join(work, "big.torrent")
        with open(torrent_file, "wb") as f:
            f.write(wait_http(f"{one}/torrents/{v2}"))
        out = os.path.join(work, "out")
        runs = {"curl": [], "aria2c": [], "ours_one": [], "ours_three": []}
        rss = {"ours_one": [], "ours_three": []}
        commands = {
            "curl": ["curl", "-s", "-o", os.path.join(out, "big.bin"), f"{nginx}/big.bin"],
            "aria2c": ["aria2c", "-q", "-x8", "-s8", "--file-allocation=none", "--allow-overwrite=true", "-d", out,
                       f"{nginx}/big.bin"],
            # One seeder: named with --seeder; an unreachable --tracker keeps the other two out.
            "ours_one": [binary, "download", torrent_file, "--seeder", one, "--tracker", "http://127.0.0.1:9",
                         "--quiet", "-o", out],
            "ours_three": [binary, "download", v2, "--tracker", one, "--quiet", "-o", out],
        }
        for _ in range(args.rounds):
            for name, command in commands.items():
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                sync()
                seconds, peak = timed(command)
                runs[name].append(seconds)
                if name in rss:
                    rss[name].append(peak)
        shutil.rmtree(out, ignore_errors=True)
        for ours in ("ours_one", "ours_three"):
            label = "1 seeder" if ours == "ours_one" else "3 seeders"
            for ref in ("curl", "aria2c"):
                record("download", f"{label} vs {ref} (wall s)", runs[ours], runs[ref], "s", False,
                       {"ours_peak_rss_kib": rss[ours]})

        # 3. Tracker announces.
        opentracker = start_opentracker(procs, work)
        load = {"TORRENTS": "1000", "PEERS": "50000"}
        for close, label in (("0", "keep-alive"), ("1", "one connection per request")):
            ours, theirs = [], []
            env = dict(load, CLOSE=close)
            wrk("announce.lua", one, max(1, args.seconds // 2), 32, env)  # warm-up: fill the swarms
            wrk("announce.lua", opentracker, max(1, args.seconds // 2), 32, env)
            for _ in range(args.rounds):
                theirs.append(wrk("announce.lua", opentracker, args.seconds, 32, env))
                ours.append(wrk("announce.lua", one, args.seconds, 32, env))
            record("tracker", f"GET /announce, {label}", [r["rps"] for r in ours], [r["rps"] for r in theirs],
                   "req/s", True, {"ours_p99_ms": [r["p99_ms"] for r in ours],
                                   "opentracker_p99_ms": [r["p99_ms"] for r in theirs],
                                   "errors": sum(r["errors"] for r in ours)})
        # The floor under the one-connection figure: an actix-web app that only answers, on the
        # same accept loops, beside opentracker in this run.
        empty, empty_proc = start_empty_app(procs, binary)
        env = dict(load, CLOSE="1")
        wrk("announce.lua", empty, max(1, args.seconds // 2), 32, env)
        floor, theirs = [], []
        for _ in range(args.rounds):
            theirs.append(wrk("announce.lua", opentracker, args.seconds, 32, env))
            floor.append(wrk("announce.lua", empty, args.seconds, 32, env))
        record("tracker", "empty actix-web app, one connection per request",
               [r["rps"] for r in floor], [r["rps"] for r in theirs], "req/s", True,
               {"errors": sum(r["errors"] for r in floor)})
        procs.stop(empty_proc)
        # The same keep-alive announces against a tracker whose state is in Redis (scale-out),
        # beside the in-memory one in this run.
        shared = start_tracker(procs, binary, work, "redis-tracker", start_redis(procs, work))
        env = dict(load, CLOSE="0")
        wrk("announce.lua", shared, max(1, args.seconds // 2), 32, env)  # warm-up: fill the swarms
        in_redis, in_memory = [], []
        for _ in range(args.rounds):
            in_memory.append(wrk("announce.lua", one, args.seconds, 32, env))
            in_redis.append(wrk("announce.lua", shared, args.seconds, 32, env))
        record("tracker", "GET /announce keep-alive, Redis vs in-memory", [r["rps"] for r in in_redis],
               [r["rps"] for r in in_memory], "req/s", True, {"errors": sum(r["errors"] for r in in_redis)})
        native = [wrk("native_announce.lua", one, args.seconds, 32, dict(load, CLOSE="0")) for _ in range(args.rounds)]
        results["cases"]["tracker: POST /announce (JSON), keep-alive"] = {
            "ours": [r["rps"] for r in native], "unit": "req/s", "errors": sum(r["errors"] for r in native)}
        rows.append(("tracker", "POST /announce JSON, keep-alive", statistics.median([r["rps"] for r in native]),
                     None, "req/s", None))

        # 4. create vs openssl.
        subprocess.run(["cat", big], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        ours, theirs = [], []
        for _ in range(args.rounds):
            theirs.append(timed(["openssl", "dgst", "-sha256", big])[0])
            ours.append(timed([binary, "create", big, "-o", os.path.join(work, "c.torrent")])[0])
        record("create", "1 file, SHA-1 + SHA-256 vs openssl sha256 (wall s)", ours, theirs, "s", False)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'section':9} {'case':52} {'ours':>12} {'reference':>12}  ratio")
    for section, name, ours, ref, unit, ratio in rows:
        ref_s = f"{ref:12.2f}" if ref is not None else f"{'-':>12}"
        ratio_s = f"{ratio:5.2f}" if ratio is not None else "    -"
        print(f"{section:9} {name:52} {ours:12.2f} {ref_s}  {ratio_s}  ({unit})")
    out_path = args.out or os.path.join(HERE, "results", datetime.date.today().isoformat() + (
        "-smoke" if args.smoke else "") + ".json")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nwritten to {out_path}")
    bad = [k for k, v in results["cases"].items() if v.get("errors")]
    if bad:
        print(f"errors in: {bad}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

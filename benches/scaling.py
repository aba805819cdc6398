#!/usr/bin/env python3
"""How cost grows with the work (docs/performance.md, "How cost grows"). Called by
benches/scaling.sh, which checks the tools and builds the release binary.

    scaling.py --binary target/release/gotorrent-http [--smoke] [--out FILE]

1. GET /torrents (a page) and GET /metrics against the registry's size: a tracker-only instance
   whose state lives on /dev/shm (so registering 100,000 torrents is not 100,000 disk syncs)
   gets tiny hybrid torrents registered in steps; after each step, the median latency of
   sequential keep-alive requests.
2. Download of one file from 1, 2, 4 and 8 seeders, all fast, then with one of them behind a
   proxy that sends 4 MB/s.
3. Peak RSS of the downloader and of the seeder that served it (hashing included) against the
   file's size.

Announce cost against the number of torrents and peers is measured in-process, where the
figures are stable: `cargo bench --bench micro -- "tracker scaling"`.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the side-by-side benchmark's process helpers)


def bencode(value):
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, str):
        return bencode(value.encode())
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(value)


def tiny_torrent(i):
    """A valid hybrid torrent of one file of under 16 KiB (one block: its pieces root is the
    block's SHA-256, and no piece layers are needed)."""
    data = b"scaling %d" % i
    name = f"t{i:07d}.bin"
    info = {"name": name, "piece length": 16384, "length": len(data),
            "pieces": hashlib.sha1(data).digest(), "meta version": 2,
            "file tree": {name: {"": {"length": len(data), "pieces root": hashlib.sha256(data).digest()}}}}
    return bencode({"info": info})


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)

    def request(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        return response.status, response.read(), response

    def close(self):
        self.conn.close()


def register(url, first, last, threads=4):
    """Registers tiny torrents first..last-1 over a few keep-alive connections."""
    errors = []

    def worker(k):
        client = Client(url)
        for i in range(first + k, last, threads):
            status, body, _ = client.request("POST", "/torrents", tiny_torrent(i),
                                             {"content-type": "application/x-bittorrent"})
            if status not in (200, 201):
                errors.append(f"{status} {body[:200]!r}")
                return
        client.close()

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise SystemExit(f"registering failed: {errors[0]}")


def latency_ms(url, path, count):
    """Median and p90 of `count` sequential requests on one connection, in ms."""
    client = Client(url)
    client.request("GET", path)  # warm
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        status, body, _ = client.request("GET", path)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:200]!r}")
    client.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def timed_get(url, path):
    """One request on a fresh connection, in ms."""
    client = Client(url)
    t0 = time.perf_counter()
    status, body, _ = client.request("GET", path)
    elapsed = (time.perf_counter() - t0) * 1000
    client.close()
    if status != 200:
        raise SystemExit(f"GET {path}: {status} {body[:200]!r}")
    return elapsed


def listing_case(procs, binary, work, sizes, count):
    state = tempfile.mkdtemp(prefix="gotorrent-scaling-", dir="/dev/shm")
    try:
        port = run.free_port()
        env = dict(os.environ, GOTORRENT__TRACKER__RATE_LIMIT_PER_SECOND="0",
                   GOTORRENT__TRACKER__MAX_TORRENTS="10000000", GOTORRENT__LOG__LEVEL="warn")
        p = procs.start([binary, "serve", "--no-seeder", "--bind", f"127.0.0.1:{port}", "--state-dir", state],
                        env=env, stderr=open(os.path.join(work, "listing.log"), "w"))
        url = f"http://127.0.0.1:{port}"
        run.wait_http(f"{url}/ready")
        rows, registered = [], 0
        for size in sizes:
            t0 = time.time()
            register(url, registered, size)
            rate = (size - registered) / (time.time() - t0)
            registered = size
            # A cursor in the middle of the hash space, for a page that is not the first.
            middle = "8" + "0" * 63
            row = {"torrents": size, "register_per_s": round(rate)}
            for label, path in (("first page", "/torrents"), ("a middle page", f"/torrents?after={middle}"),
                                ("metrics", "/metrics"), ("web page", "/"), ("web page, filtered", "/?q=t00")):
                median, p90 = latency_ms(url, path, count)
                row[label] = {"median_ms": round(median, 3), "p90_ms": round(p90, 3)}
            # The work the caches save, once: the page's snapshot rebuilt after a registration
            # (at most once a second), the metrics gauges refreshed (at most every 5 s).
            register(url, registered, registered + 1, threads=1)
            registered += 1
            time.sleep(1.1)
            row["web page rebuild_ms"] = round(timed_get(url, "/"), 3)
            time.sleep(5.1)
            row["metrics refresh_ms"] = round(timed_get(url, "/metrics"), 3)
            with open(f"/proc/{p.pid}/status") as f:
                row["server_rss_mib"] = round(int(next(l for l in f if l.startswith("VmRSS")).split()[1]) / 1024)
            rows.append(row)
            print(f"  {size:>9,} torrents: /torrents {row['first page']['median_ms']:.2f} ms, "
                  f"middle page {row['a middle page']['median_ms']:.2f} ms, /metrics {row['metrics']['median_ms']:.2f} ms, "
                  f"/ {row['web page']['median_ms']:.2f} ms, /?q=t00 {row['web page, filtered']['median_ms']:.2f} ms "
                  f"(registered at {rate:,.0f}/s, RSS {row['server_rss_mib']} MiB); once per second at most, "
                  f"the page's rebuild {row['web page rebuild_ms']:.1f} ms, every 5 s the gauges' refresh "
                  f"{row['metrics refresh_ms']:.1f} ms", flush=True)
        procs.stop(p)
        return rows
    finally:
        shutil.rmtree(state, ignore_errors=True)


class SlowProxy:
    """Forwards TCP connections to `target`, sending the responses at `rate` bytes/s per
    connection: a seeder on a slow uplink."""

    def __init__(self, target_port, rate):
        self.target, self.rate = target_port, rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self.pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self.pipe, args=(upstream, client, self.rate), daemon=True).start()

    @staticmethod
    def pipe(src, dst, rate):
        start, sent = time.time(), 0
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    sent += len(data)
                    ahead = sent / rate - (time.time() - start)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


def start_seeders(procs, binary, work, source, count):
    seeders = []
    for k in range(count):
        data = os.path.join(work, f"data-{k}")
        os.makedirs(data, exist_ok=True)
        target = os.path.join(data, os.path.basename(source))
        if not os.path.exists(target):
            os.link(source, target)
        url, pid, torrent = run.start_gotorrent(procs, binary, work, f"seeder-{k}", data, 1 << 20,
                                                tracker="http://127.0.0.1:9")
        seeders.append((url, pid, torrent, procs.procs[-1]))
    return seeders


def download(binary, torrent_file, seeders, out):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    run.sync()
    args = [binary, "download", torrent_file, "--tracker", "http://127.0.0.1:9", "--quiet", "-o", out]
    for s in seeders:
        args += ["--seeder", s]
    seconds, rss = run.timed(args)
    shutil.rmtree(out, ignore_errors=True)
    return seconds, rss


def seeders_case(procs, binary, work, size, counts, rounds):
    source = os.path.join(work, "many.bin")
    run.write_random(source, size)
    seeders = start_seeders(procs, binary, work, source, max(counts))
    torrent_file = os.path.join(work, "many.torrent")
    with open(torrent_file, "wb") as f:
        f.write(run.wait_http(f"{seeders[0][0]}/torrents/{seeders[0][2]['info_hash_v2']}"))
    slow = SlowProxy(int(seeders[0][0].rsplit(":", 1)[1]), 4_000_000)
    slow_url = f"http://127.0.0.1:{slow.port}"
    rows = []
    for n in counts:
        fast = [s[0] for s in seeders[:n]]
        with_slow = [slow_url] + [s[0] for s in seeders[1:n]]
        all_fast = [download(binary, torrent_file, fast, os.path.join(work, "out"))[0] for _ in range(rounds)]
        one_slow = [download(binary, torrent_file, with_slow, os.path.join(work, "out"))[0]
                    for _ in range(rounds)] if n > 1 else None
        row = {"seeders": n, "all_fast_s": all_fast, "one_slow_s": one_slow}
        rows.append(row)
        slow_text = f"{statistics.median(one_slow):.2f} s" if one_slow else "-"
        print(f"  {n} seeders: all fast {statistics.median(all_fast):.2f} s, one at 4 MB/s {slow_text}", flush=True)
    slow.close()
    for s in seeders:
        procs.stop(s[3])
    os.remove(source)
    return rows


def rss_case(procs, binary, work, sizes):
    rows = []
    for size in sizes:
        case = os.path.join(work, f"rss-{size}")
        os.makedirs(case)
        source = os.path.join(case, "file.bin")
        run.write_random(source, size)
        (url, pid, torrent, proc), = start_seeders(procs, binary, case, source, 1)
        torrent_file = os.path.join(case, "file.torrent")
        with open(torrent_file, "wb") as f:
            f.write(run.wait_http(f"{url}/torrents/{torrent['info_hash_v2']}"))
        seconds, client_kib = download(binary, torrent_file, [url], os.path.join(case, "out"))
        with open(f"/proc/{pid}/status") as f:
            server_kib = int(next(l for l in f if l.startswith("VmHWM")).split()[1])
        procs.stop(proc)
        shutil.rmtree(case, ignore_errors=True)
        row = {"size_bytes": size, "download_s": seconds, "downloader_peak_rss_mib": round(client_kib / 1024),
               "seeder_peak_rss_mib": round(server_kib / 1024)}
        rows.append(row)
        print(f"  {size >> 20:>6} MiB: download {seconds:.2f} s, downloader peak RSS {row['downloader_peak_rss_mib']} MiB, "
              f"seeder peak RSS (hashing and serving) {row['seeder_peak_rss_mib']} MiB", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    if args.smoke:
        registry, latency_count, many_size, counts, rounds, rss_sizes = [100, 300], 5, 8 << 20, [1, 2], 1, [4 << 20]
    else:
        registry, latency_count, many_size, counts, rounds, rss_sizes = (
            [1_000, 10_000, 100_000], 200, 256 << 20, [1, 2, 4, 8], 3, [64 << 20, 1 << 30, 4 << 30])
    work = tempfile.mkdtemp(prefix="gotorrent-scaling-")
    procs = run.Procs()
    results = {"machine": f"{os.cpu_count()} cores", "date": datetime.datetime.now().isoformat(timespec="seconds")}
    try:
        print("GET /torrents and /metrics against the registry's size (keep-alive, sequential)", flush=True)
        results["listing"] = listing_case(procs, binary, work, registry, latency_count)
        print(f"download of {many_size >> 20} MiB against the number of seeders (median of {rounds})", flush=True)
        results["seeders"] = seeders_case(procs, binary, work, many_size, counts, rounds)
        print("peak RSS against the file's size (one seeder, one download)", flush=True)
        results["rss"] = rss_case(procs, binary, work, rss_sizes)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                   datetime.date.today().isoformat() + ("-scaling-smoke" if args.smoke else "-scaling") + ".json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"written to {out}")


if __name__ == "__main__":
    main()

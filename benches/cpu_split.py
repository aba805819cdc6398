#!/usr/bin/env python3
"""Where the CPU goes, per request, when gotorrent-http runs beside the server it depends on.

    cpu_split.py --binary target/release/gotorrent-http redis   # tracker in memory vs on Redis
    cpu_split.py --binary target/release/gotorrent-http s3      # Garage direct vs via an S3 seeder

Each case runs wrk for 8 s (after a warm-up) and divides each process's user + system time
and its minor page faults (from /proc/PID/stat) by the requests served: on a VM that hands
free memory back to its host, fresh buffers cost faults, and faults cost CPU. Uses
benches/run.py's helpers; needs the same tools.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402


def usage(pid):
    """(CPU ticks, minor page faults) the process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[7])


def measure(name, script, url, env, pids):
    """Prints req/s, CPU microseconds and page faults per request for each of `pids` (name -> pid)."""
    before = {p: usage(pid) for p, pid in pids.items()}
    result = bench.wrk(script, url, 8, 32, env)
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    n = result["requests"]
    per = []
    for p, pid in pids.items():
        ticks, faults = usage(pid)
        per.append(f"{p} {(ticks - before[p][0]) * tick_us / n:.1f} us {(faults - before[p][1]) / n:.1f} faults")
    print(f"{name:28} {result['rps']:9.0f} req/s   " + "  ".join(per))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("case", choices=["redis", "s3"])
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="gotorrent-cpu-")
    procs = bench.Procs()
    try:
        if args.case == "redis":
            load = {"TORRENTS": "1000", "PEERS": "50000", "CLOSE": "0"}
            data = os.path.join(work, "data")
            os.makedirs(data)
            with open(os.path.join(data, "f.bin"), "wb") as f:
                f.write(os.urandom(1 << 20))
            memory, memory_pid, _ = bench.start_gotorrent(procs, binary, work, "memory", data, 1 << 20)
            redis = bench.start_redis(procs, work)
            redis_pid = procs.procs[-1].pid
            shared = bench.start_tracker(procs, binary, work, "redis-tracker", redis)
            shared_pid = procs.procs[-1].pid
            for url in (memory, shared):
                bench.wrk("announce.lua", url, 4, 32, load)
            measure("in memory", "announce.lua", memory, load, {"tracker": memory_pid})
            measure("on Redis", "announce.lua", shared, load, {"tracker": shared_pid, "redis": redis_pid})
        else:
            big = os.path.join(work, "big.bin")
            bench.write_random(big, 256 << 20)
            s3 = bench.start_garage(procs, work)
            garage_pid = procs.procs[-1].pid
            bench.s3_put(s3, "big.bin", big)
            seeder, torrent = bench.start_s3_seeder(procs, binary, work, s3)
            seeder_pid = procs.procs[-1].pid
            (store, direct_load), (_, via_load) = loads = bench.s3_loads(seeder, torrent, 256 << 20)
            for url, load in loads:
                bench.wrk("pieces.lua", url, 4, 32, load)
            measure("direct from Garage", "pieces.lua", store, direct_load, {"garage": garage_pid})
            measure("via the S3-backed seeder", "pieces.lua", seeder, via_load,
                    {"garage": garage_pid, "seeder": seeder_pid})
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()

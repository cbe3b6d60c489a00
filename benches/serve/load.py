#!/usr/bin/env python3
"""Load generator for `sparsa serve` (issue #19's capacity targets): N
concurrent Vosk WebSocket streams of real speech, each sent in real time.

  target/serve-venv/bin/python benches/serve/load.py --url ws://127.0.0.1:2700 \\
      --data ../shared/corpora/speechocean762/test --streams 5,10,20,30,40 \\
      --duration 60 [--server-pid PID] [--json FILE]

(bash tests/serve/venv.sh makes the venv.) For each level N it keeps N
streams open for --duration seconds. Each stream loops over clips of the
data dir (wav.scp; decoded once with sox to 16 kHz s16le): it connects,
sends {"config": {"sample_rate": 16000}}, then one 0.2 s binary frame every
0.2 s of wall clock, scheduled against an absolute clock (a late frame does
not delay the next ones), then {"eof" : 1} at the clip's end; the server
answers the final result and closes, and the stream reconnects for its
next clip. Streams start spread over one frame period. A reader task per
connection matches replies to frames first in, first out (the protocol
answers each frame once, in order) without holding back the sends.

Per level it prints: streams, frames sent, reply latency p50/p95/p99 in ms
(frame sent -> its reply received), dropped (frames whose connection closed
without their reply), finals/expected (eofs answered by a result), refused
(connections closed with 1013, server at capacity; the stream retries 1 s
later, their frames not counted), errors (other failed connections), the
server's RSS in MB (peak of /proc/PID/status VmRSS sampled each second with
--server-pid, else /health's rss_kb mid-level) and its CPU in cores (with
--server-pid), and this generator's own CPU and worst send lateness (to
show the load was delivered on time). Then the knee: the first level whose
p99 exceeds 200 ms. --json FILE writes all of it.
"""

import argparse
import asyncio
import collections
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidHandshake

RATE = 16000
FRAME_S = 0.2
FRAME_BYTES = int(RATE * FRAME_S) * 2
KNEE_MS = 200.0


def load_clips(data, limit):
    """PCM s16le 16 kHz mono of the first `limit` clips of data/wav.scp."""
    clips = []
    with open(os.path.join(data, "wav.scp"), encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) != 2:
                continue
            path = parts[1]
            if not os.path.isabs(path):  # relative to the data dir or its parent
                here = os.path.join(data, path)
                path = here if os.path.exists(here) else os.path.join(data, "..", path)
            pcm = subprocess.run(
                ["sox", path, "-t", "raw", "-r", str(RATE), "-e", "signed-integer",
                 "-b", "16", "-c", "1", "-L", "-"],
                check=True, stdout=subprocess.PIPE).stdout
            clips.append((parts[0], pcm))
            if len(clips) >= limit:
                break
    if not clips:
        sys.exit(f"load: no clips in {data}/wav.scp")
    return clips


class Level:
    """What one load level measured."""

    def __init__(self, streams):
        self.streams = streams
        self.frames = 0
        self.replies = 0
        self.latencies = []
        self.dropped = 0
        self.finals = 0
        self.expected = 0
        self.refused = 0
        self.errors = 0
        self.error_kinds = collections.Counter()
        self.utterances = 0
        self.max_lateness = 0.0


async def run_connection(url, pcm, level):
    """One clip over one connection. Returns False when refused."""
    pending = collections.deque()  # (send time, is_eof) per unanswered message
    stats = {"frames": 0, "replies": 0, "lat": [], "final": False}
    try:
        ws = await connect(url, max_size=None, compression=None, ping_interval=None,
                           open_timeout=10, close_timeout=5)
    except InvalidStatus as err:
        code = err.response.status_code
        if code == 503:  # refused at the handshake rather than with 1013
            level.refused += 1
            return False
        level.errors += 1
        level.error_kinds[f"http {code}"] += 1
        return True
    except (OSError, InvalidHandshake, asyncio.TimeoutError) as err:
        level.errors += 1
        level.error_kinds[type(err).__name__] += 1
        return True

    async def reader():
        async for msg in ws:
            now = time.monotonic()
            if not pending:
                continue  # a reply to nothing we sent: not counted
            sent, is_eof = pending.popleft()
            if is_eof:
                stats["final"] = isinstance(msg, str) and ('"text"' in msg or '"alternatives"' in msg)
            else:
                stats["replies"] += 1
                stats["lat"].append(now - sent)

    read_task = asyncio.create_task(reader())
    try:
        await ws.send(json.dumps({"config": {"sample_rate": RATE}}))
        start = time.monotonic()
        n = 0
        for off in range(0, len(pcm), FRAME_BYTES):
            due = start + n * FRAME_S
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                level.max_lateness = max(level.max_lateness, -delay)
            if read_task.done():
                break  # the server closed
            pending.append((time.monotonic(), False))
            await ws.send(pcm[off:off + FRAME_BYTES])
            stats["frames"] += 1
            n += 1
        if not read_task.done():
            pending.append((time.monotonic(), True))
            await ws.send('{"eof" : 1}')
            level.expected += 1
        # The final, then the server's close.
        await asyncio.wait_for(read_task, 30)
    except (ConnectionClosed, OSError, asyncio.TimeoutError):
        pass
    finally:
        if not read_task.done():
            read_task.cancel()
        try:
            await read_task
        except (asyncio.CancelledError, ConnectionClosed, OSError):
            pass
        await ws.close()
    if ws.close_code == 1013:
        level.refused += 1
        return False
    level.utterances += 1
    level.frames += stats["frames"]
    level.replies += stats["replies"]
    level.latencies.extend(stats["lat"])
    level.dropped += stats["frames"] - stats["replies"]
    level.finals += stats["final"]
    if ws.close_code not in (1000, None) and not stats["final"]:
        level.error_kinds[f"close {ws.close_code} {ws.close_reason}"[:80]] += 1
    return True


async def run_stream(i, url, clips, level, start_at, stop_at):
    k = i * 7919  # each stream its own order through the clips
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    while time.monotonic() < stop_at:
        _, pcm = clips[k % len(clips)]
        k += 1
        if not await run_connection(url, pcm, level):
            await asyncio.sleep(1.0)


def health_url(url):
    return "http" + url[2:].split("?")[0].rstrip("/") + "/health" if url.startswith("ws") else None


def fetch_health(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def own_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(sorted_ms, p):
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, max(0, int(round(p / 100 * len(sorted_ms) + 0.5)) - 1))]


async def run_level(args, clips, n):
    level = Level(n)
    hurl = health_url(args.url)
    t0 = time.monotonic()
    stop_at = t0 + args.duration
    cpu0, own0 = (proc_cpu_s(args.server_pid) if args.server_pid else None), own_cpu_s()
    tasks = [asyncio.create_task(run_stream(i, args.url, clips, level, t0 + FRAME_S * i / n, stop_at))
             for i in range(n)]
    peak_rss = None
    mid_health = None
    while not all(t.done() for t in tasks):
        await asyncio.sleep(1.0)
        if args.server_pid:
            rss = proc_rss_kb(args.server_pid)
            if rss is not None:
                peak_rss = max(peak_rss or 0, rss)
        if mid_health is None and hurl and time.monotonic() >= t0 + args.duration / 2:
            mid_health = await asyncio.to_thread(fetch_health, hurl)
    await asyncio.gather(*tasks)
    wall = time.monotonic() - t0
    cpu1 = proc_cpu_s(args.server_pid) if args.server_pid else None
    lat = sorted(x * 1000 for x in level.latencies)
    if peak_rss is None and mid_health and "rss_kb" in mid_health:
        peak_rss = mid_health["rss_kb"]
    return {
        "streams": n,
        "seconds": round(wall, 1),
        "frames": level.frames,
        "replies": level.replies,
        "p50_ms": ms(pct(lat, 50)),
        "p95_ms": ms(pct(lat, 95)),
        "p99_ms": ms(pct(lat, 99)),
        "max_ms": ms(lat[-1] if lat else None),
        "dropped": level.dropped,
        "finals": level.finals,
        "expected_finals": level.expected,
        "utterances": level.utterances,
        "refused": level.refused,
        "errors": level.errors,
        "error_kinds": dict(level.error_kinds),
        "server_rss_mb": round(peak_rss / 1024, 1) if peak_rss else None,
        "server_cpu_cores": round((cpu1 - cpu0) / wall, 2) if cpu0 is not None and cpu1 is not None else None,
        "server_health_mid": mid_health,
        "loadgen_cpu_pct": round(100 * (own_cpu_s() - own0) / wall, 1),
        "max_send_lateness_ms": round(level.max_lateness * 1000, 1),
    }


def ms(x):
    return None if x is None else round(x, 1)


def fmt(x, digits=0):
    return "-" if x is None else f"{x:.{digits}f}"


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="ws://127.0.0.1:2700")
    ap.add_argument("--data", default="../shared/corpora/speechocean762/test")
    ap.add_argument("--streams", default="5,10,20,30,40", help="comma-separated levels")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per level")
    ap.add_argument("--server-pid", type=int, help="read the server's RSS and CPU from /proc")
    ap.add_argument("--clips", type=int, default=60, help="clips of the data dir to loop over")
    ap.add_argument("--pause", type=float, default=3.0, help="seconds between levels")
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args()
    levels = [int(s) for s in args.streams.split(",") if s.strip()]
    clips = load_clips(args.data, args.clips)
    secs = sum(len(p) for _, p in clips) / 2 / RATE
    print(f"load: {len(clips)} clips ({secs:.0f} s of speech) from {args.data}; "
          f"levels {levels}, {args.duration:g} s each, 0.2 s frames in real time to {args.url}", flush=True)
    idle_rss = proc_rss_kb(args.server_pid) if args.server_pid else None
    if idle_rss is None:
        h = fetch_health(health_url(args.url)) if health_url(args.url) else None
        idle_rss = h.get("rss_kb") if h else None
    header = (f"{'streams':>7} {'frames':>7} {'p50ms':>6} {'p95ms':>6} {'p99ms':>6} {'maxms':>6} "
              f"{'dropped':>7} {'finals':>9} {'refused':>7} {'errors':>6} {'rssMB':>6} "
              f"{'srvCPU':>6} {'genCPU%':>7} {'late_ms':>7}")
    print(header, flush=True)
    rows = []
    for i, n in enumerate(levels):
        if i:
            await asyncio.sleep(args.pause)
        r = await run_level(args, clips, n)
        rows.append(r)
        print(f"{n:>7} {r['frames']:>7} {fmt(r['p50_ms']):>6} {fmt(r['p95_ms']):>6} {fmt(r['p99_ms']):>6} "
              f"{fmt(r['max_ms']):>6} {r['dropped']:>7} {r['finals']:>4}/{r['expected_finals']:<4} "
              f"{r['refused']:>7} {r['errors']:>6} {fmt(r['server_rss_mb'], 1):>6} "
              f"{fmt(r['server_cpu_cores'], 2):>6} {fmt(r['loadgen_cpu_pct'], 1):>7} "
              f"{fmt(r['max_send_lateness_ms'], 0):>7}", flush=True)
        if r["error_kinds"]:
            print(f"        errors: {r['error_kinds']}", flush=True)
    knee = next((r["streams"] for r in rows if r["p99_ms"] is not None and r["p99_ms"] > KNEE_MS), None)
    if knee is None:
        print(f"knee: none up to {levels[-1]} streams (p99 <= {KNEE_MS:g} ms at every level)")
    else:
        print(f"knee: {knee} streams (the first level with p99 > {KNEE_MS:g} ms)")
    per_stream = None
    if idle_rss and rows and rows[-1]["server_rss_mb"]:
        per_stream = (rows[-1]["server_rss_mb"] * 1024 - idle_rss) / rows[-1]["streams"] / 1024
        print(f"memory: {idle_rss / 1024:.1f} MB idle, {per_stream:.2f} MB per stream at {rows[-1]['streams']} streams")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"url": args.url, "data": args.data, "clips": len(clips), "duration_s": args.duration,
                       "frame_s": FRAME_S, "knee_ms": KNEE_MS, "knee_streams": knee,
                       "idle_rss_mb": round(idle_rss / 1024, 1) if idle_rss else None,
                       "mb_per_stream": round(per_stream, 2) if per_stream is not None else None,
                       "levels": rows}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    asyncio.run(main())

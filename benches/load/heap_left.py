#!/usr/bin/env python3
"""What a burst left live: heaptrack's raw trace read in order.

heaptrack_print reports what is live at the end, not *when* it was allocated, and after a burst
what keeps an allocator's pages resident is not how many bytes are live but which blocks made
during the burst still are (one live block keeps its page). This reads the trace heaptrack writes
(`heaptrack -o FILE PROGRAM ...`; zstd or gzip, the interpreted format: `a size trace` defines an
allocation kind, `+ kind` / `- kind` allocate and free one, `c ms` is the clock), takes the live
count of every kind at BEFORE_MS (an instant before the load: see the timeline it prints first)
and at the end of the trace, and prints the call stacks with more allocations live at the end,
by count, then by bytes.

    benches/load/heap_left.py /tmp/ht.zst 3000 [--at MS] [--top 30] [--frames 6]

How it was used (benches/load/README.md, "What held those pages"): a system-allocator build
(`cargo build --release -p bitrouter-proxy --bin bitrouter --no-default-features`) run under
heaptrack, 10,000 streams through it with `streamload client`, killed with `kill -9` 10 s after
the client closed its connections.
"""
import argparse
import collections
import subprocess
import sys


def open_trace(path):
    if path.endswith(".zst"):
        cmd = ["zstd", "-dc", path]
    elif path.endswith(".gz"):
        cmd = ["gzip", "-dc", path]
    else:
        return open(path, encoding="utf-8", errors="replace")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, errors="replace").stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("before_ms", type=int, help="an instant before the load, in the trace's clock")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--at", type=int, default=None,
                    help="compare the live allocations at this instant (ms) instead of the trace's end")
    a = ap.parse_args()

    strings, ips, traces = [None], [None], [None]  # 1-based in the trace
    kinds = []  # 0-based: (size, trace)
    live = collections.Counter()
    before = None
    at = None
    now = 0
    live_bytes = live_count = 0
    last_print = None
    print("timeline (ms, live allocations, live KiB):")
    for line in open_trace(a.trace):
        k = line[:1]
        if k == "+":
            i = int(line[2:], 16)
            live[i] += 1
            live_count += 1
            live_bytes += kinds[i][0]
        elif k == "-":
            i = int(line[2:], 16)
            live[i] -= 1
            live_count -= 1
            live_bytes -= kinds[i][0]
        elif k == "c":
            now = int(line[2:], 16)
            if before is None and now >= a.before_ms:
                before = collections.Counter(live)
                print(f"  {now:>7}  {live_count:>9}  {live_bytes // 1024:>9}   <- before")
                last_print = now
            elif a.at is not None and at is None and now >= a.at:
                at = collections.Counter(live)
                print(f"  {now:>7}  {live_count:>9}  {live_bytes // 1024:>9}   <- at")
                last_print = now
            elif last_print is None or now - last_print >= 2000:
                print(f"  {now:>7}  {live_count:>9}  {live_bytes // 1024:>9}")
                last_print = now
        elif k == "s":
            # `s LEN TEXT` (heaptrack 1.3+ writes the length first)
            text = line[2:].rstrip("\n")
            head, _, rest = text.partition(" ")
            strings.append(rest if rest and all(c in "0123456789abcdef" for c in head) else text)
        elif k == "i":
            f = line.split()
            ips.append(strings[int(f[3], 16)] if len(f) > 3 else f[1])
        elif k == "t":
            f = line.split()
            traces.append((int(f[1], 16), int(f[2], 16)))
        elif k == "a":
            f = line.split()
            kinds.append((int(f[1], 16), int(f[2], 16)))
    print(f"  {now:>7}  {live_count:>9}  {live_bytes // 1024:>9}   <- end")
    if before is None:
        sys.exit(f"the trace ends at {now} ms, before {a.before_ms}")
    if a.at is not None:
        if at is None:
            sys.exit(f"the trace ends at {now} ms, before --at {a.at}")
        live = at

    grew = collections.defaultdict(lambda: [0, 0])  # trace -> [allocations, bytes] left
    for i, n in live.items():
        d = n - before.get(i, 0)
        if d:
            size, trace = kinds[i]
            grew[trace][0] += d
            grew[trace][1] += d * size
    left = [(t, c, b) for t, (c, b) in grew.items() if c > 0]
    print(f"\nleft from after {a.before_ms} ms{'' if a.at is None else f' at {a.at} ms'}: {sum(c for _, c, _ in left)} allocations, "
          f"{sum(b for _, _, b in left)} bytes, from {len(left)} call stacks")

    def stack(t):
        out = []
        while t and len(out) < a.frames:
            ip, parent = traces[t]
            name = ips[ip]
            # The allocator's own frames (std's System, the aligned path) say nothing.
            if out or not any(m in name for m in ("3sys5alloc", "aligned_malloc", "__rust_")):
                out.append(name[:90])
            t = parent
        return " <- ".join(out)

    for title, key in (("by count", lambda x: -x[1]), ("by bytes", lambda x: -x[2])):
        print(f"\n{title}:")
        for t, c, b in sorted(left, key=key)[: a.top]:
            print(f"  +{c:<6} {b:>9} B  {stack(t)}")


if __name__ == "__main__":
    main()

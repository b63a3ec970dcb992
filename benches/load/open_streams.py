"""Open streams (issue 20): what an edge gateway in front of many agents holds.

N slow SSE streams at once through a fresh proxy process: the upstream (`streamload upstream`,
proxy/examples/streamload.rs) paces one chat-completion chunk every INTERVAL ms, each carrying
the time it was written; the client (`streamload client`) opens the streams over RAMP ms, reads
every event, and samples the server's resident memory: before the load (idle), the most while
every stream was open, and AFTER seconds after the last one ended and the client closed its
connections (did the allocator give it back?); over h2c also AFTER seconds after the last stream
ended with the client's idle connections still open, which prices an idle client connection.
Lateness is receive time - write time of each event; the direct row (client straight to the
upstream) is the floor every proxy row is compared with ("added p99").

10,000 streams over HTTP/1.1 need 20,000 descriptors in the proxy (one per side), which is the
hard per-process limit on the machine the results come from (an unprivileged process cannot
raise it): the 10k rows send their streams over h2c connections (STREAMS_PER_H2 per connection)
to the proxy, which opens one HTTP/1.1 connection per stream to the upstream as for 1k. The
direct 10k row stays HTTP/1.1 (client and upstream are separate processes).
"""
import json
import os

INTERVAL_MS = 300
EVENTS = 30
AFTER_SECS = 10
STREAMS_PER_H2 = 50

# name: (kind, streams, ramp ms, h2c connections (0: HTTP/1.1, one connection per stream))
ROWS = {
    "open-direct-1k": ("direct", 1000, 1000, 0),
    "open-nginx-1k": ("nginx", 1000, 1000, 0),
    "open-pingora-1k": ("pingora", 1000, 1000, 0),
    "open-bitrouter-1k": ("bitrouter", 1000, 1000, 0),
    "open-direct-10k": ("direct", 10000, 4000, 0),
    "open-nginx-10k": ("nginx", 10000, 4000, 10000 // STREAMS_PER_H2),
    "open-bitrouter-10k": ("bitrouter", 10000, 4000, 10000 // STREAMS_PER_H2),
}

# Instructions per relayed event and per opened stream (callgrind): EVENT_STREAMS streams through
# a proxy under valgrind, the upstream writing EVENT_COUNTS[0] events per stream in one run and
# EVENT_COUNTS[1] in another; name: (kind, h2c connections).
EVENT_STREAMS = 200
EVENT_COUNTS = (10, 30)
EVENT_ROWS = {
    "events-nginx": ("nginx", 0),
    "events-pingora": ("pingora", 0),
    "events-bitrouter": ("bitrouter", 0),
    "events-nginx-h2c": ("nginx", EVENT_STREAMS // STREAMS_PER_H2),
    "events-bitrouter-h2c": ("bitrouter", EVENT_STREAMS // STREAMS_PER_H2),
}
EVENT_LABELS = {
    "events-nginx": "nginx (HTTP/1.1 in)",
    "events-pingora": "Pingora's stock proxy loop (HTTP/1.1 in)",
    "events-bitrouter": "bitrouter pass-through (HTTP/1.1 in)",
    "events-nginx-h2c": "nginx (h2c in)",
    "events-bitrouter-h2c": "bitrouter pass-through (h2c in)",
}

LABELS = {
    "open-direct-1k": "direct (no proxy), 1,000 streams",
    "open-nginx-1k": "nginx, 1,000 streams",
    "open-pingora-1k": "Pingora's stock proxy loop, 1,000 streams",
    "open-bitrouter-1k": "bitrouter pass-through, 1,000 streams",
    "open-direct-10k": "direct (no proxy), 10,000 streams",
    "open-nginx-10k": "nginx, 10,000 streams (h2c in)",
    "open-bitrouter-10k": "bitrouter pass-through, 10,000 streams (h2c in)",
}


def rows_for_run():
    """`name kind streams ramp h2c` lines for the run script."""
    return "\n".join(f"{n} {k} {s} {r} {h}" for n, (k, s, r, h) in ROWS.items())


def event_rows_for_run():
    """`name kind h2c` lines for the run script."""
    return "\n".join(f"{n} {k} {h}" for n, (k, h) in EVENT_ROWS.items())


def callgrind_total(path):
    """The instructions a callgrind dump counted (its `summary:` line), or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def parse_events(d):
    """One instructions-per-event row from its raw directory: per event = the difference of the
    two runs' counts over the difference of their events; per stream = what the shorter run
    counted beyond its events, over its streams (setting up and ending a stream: the request,
    the upstream connection, the ledger's row)."""
    runs = {}
    for ev in EVENT_COUNTS:
        total = callgrind_total(os.path.join(d, f"callgrind-{ev}.out.1"))
        try:
            r = json.load(open(os.path.join(d, f"events-{ev}.json")))
        except (OSError, ValueError):
            r = {}
        runs[ev] = {"instructions": total, "streams": r.get("streams"), "ok": r.get("ok"),
                    "failed": r.get("failed"), "events": r.get("events")}
    out = {"runs": runs}
    lo, hi = runs[EVENT_COUNTS[0]], runs[EVENT_COUNTS[1]]
    out["failed"] = sum((x.get("failed") or 0) for x in runs.values())
    if None in (lo["instructions"], hi["instructions"], lo["events"], hi["events"]) or hi["events"] <= lo["events"]:
        out["error"] = "incomplete (see the row's client and callgrind logs)"
        return out
    per_event = (hi["instructions"] - lo["instructions"]) / (hi["events"] - lo["events"])
    out["per_event"] = per_event
    if lo.get("streams"):
        out["per_stream"] = (lo["instructions"] - per_event * lo["events"]) / lo["streams"]
    return out


def gen(d, up, ngx, ngx_h2c, br, nginx_common, nginx_http_common, nginx_upstream):
    """The proxies' configs for these rows: nginx (HTTP/1.1 and an h2c port) and bitrouter
    (one port, h2c and HTTP/1.1), both in front of the streamload upstream on `up`."""
    prefix = os.path.join(d, "open-proxy")
    for sub in ("logs", "tmp"):
        os.makedirs(os.path.join(prefix, sub), exist_ok=True)
    # 10,000 streams: one upstream connection each, plus the h2c client connections.
    common = nginx_common(prefix).replace("worker_connections 8192", "worker_connections 19000")
    with open(os.path.join(d, "proxy-open.conf"), "w") as f:
        f.write(f"""# Generated by benches/load/open_streams.py: nginx in front of the paced SSE upstream.
{common}worker_rlimit_nofile 20000;
http {{
{nginx_http_common(prefix)}
{nginx_upstream("open_up", up)}    server {{
        listen 127.0.0.1:{ngx};
        listen 127.0.0.1:{ngx_h2c} http2;
        http2_max_concurrent_streams 256;
        location / {{
            proxy_pass http://open_up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
""")
    with open(os.path.join(d, "bitrouter-open.yaml"), "w") as f:
        f.write(f"""# Generated by benches/load/open_streams.py: the paced SSE upstream, passed through.
server:
  listen: 127.0.0.1:{br}
  h2c: true
  threads: 1
  log_level: warn
  skip_auth: true
providers:
  paced:
    api_base: http://127.0.0.1:{up}/v1
    api_key: dummy
    api_protocol: chat_completions
    models:
      - id: paced-model
""")
    with open(os.path.join(d, "open-stream.json"), "w") as f:
        json.dump({"model": "paced-model", "stream": True,
                   "messages": [{"role": "user", "content": "Count slowly."}]}, f)


def parse(raw):
    """Every open-stream row that ran: streamload's JSON plus the derived figures."""
    out = {}
    for name, (kind, streams, _ramp, h2c) in ROWS.items():
        p = os.path.join(raw, name, "open.json")
        if not os.path.exists(p):
            continue
        try:
            r = json.load(open(p))
        except (OSError, ValueError):
            out[name] = {"error": "unreadable open.json"}
            continue
        rss = r.get("rss_kb", {})
        idle, all_open, after = rss.get("idle", 0), rss.get("all_open", 0), rss.get("after", 0)
        r["kind"], r["h2c_connections"] = kind, h2c
        r["per_stream_kb"] = (all_open - idle) / streams if all_open and streams else None
        r["after_vs_idle"] = after / idle if idle else None
        conns_open = rss.get("after_conns_open")
        # What one idle client connection holds once it has carried streams (h2c rows).
        r["idle_conn_kb"] = (conns_open - after) / h2c if conns_open and after and h2c else None
        out[name] = r
    for name in EVENT_ROWS:
        d = os.path.join(raw, name)
        if os.path.isdir(d):
            out[name] = parse_events(d)
    for name, (kind, h2c) in EVENT_ROWS.items():
        r, ngx = out.get(name), out.get("events-nginx-h2c" if h2c else "events-nginx", {})
        if r and ngx.get("per_event") and r.get("per_event") is not None:
            r["per_event_vs_nginx"] = r["per_event"] / ngx["per_event"]
            if r.get("per_stream") is not None and ngx.get("per_stream"):
                r["per_stream_vs_nginx"] = r["per_stream"] / ngx["per_stream"]
    for size in ("1k", "10k"):
        base = out.get(f"open-direct-{size}", {}).get("late_us", {}).get("p99")
        ngx = out.get(f"open-nginx-{size}", {}).get("per_stream_kb")
        floor = out.get(f"open-pingora-{size}", {}).get("per_stream_kb")
        for name, r in out.items():
            if not name.endswith(f"-{size}") or "late_us" not in r:
                continue
            if base is not None and r["kind"] != "direct":
                r["added_p99_us"] = r["late_us"]["p99"] - base
            if ngx and r.get("per_stream_kb") is not None and r["kind"] != "direct":
                r["per_stream_vs_nginx"] = r["per_stream_kb"] / ngx
            if floor and r.get("per_stream_kb") is not None and r["kind"] != "direct":
                r["per_stream_vs_pingora"] = r["per_stream_kb"] / floor
    return out


def failed(res):
    """Names of rows with a failed stream (the run fails on any)."""
    return [n for n, r in res.items() if r.get("failed", 0) or r.get("error")]


def targets(res):
    """(target, measured, ok) for the issue's open-stream targets that this run measured."""
    out = []
    b = res.get("open-bitrouter-1k", {})
    if b.get("per_stream_vs_nginx") is not None:
        out.append(("memory per open stream <= 2x nginx (1,000 streams)",
                    f"{b['per_stream_kb']:.1f} KiB = {b['per_stream_vs_nginx']:.2f}x", b["per_stream_vs_nginx"] <= 2.0))
    if b.get("per_stream_vs_pingora") is not None:
        out.append(("memory per open stream <= 1.2x Pingora's stock proxy (1,000 streams)",
                    f"{b['per_stream_vs_pingora']:.2f}x", b["per_stream_vs_pingora"] <= 1.2))
    for n in ("open-bitrouter-1k", "open-bitrouter-10k"):
        r = res.get(n, {})
        rss = r.get("rss_kb", {})
        if rss.get("idle"):
            # Nothing is live once every stream ended: the target is 1.5x idle.
            out.append((f"RSS {AFTER_SECS} s after the burst <= 1.5x idle ({n[-3:]})",
                        f"{rss['after'] / 1024:.1f} MiB = {r['after_vs_idle']:.2f}x idle", r["after_vs_idle"] <= 1.5))
    r = res.get("open-bitrouter-10k", {})
    if "late_us" in r:
        out.append(("10,000 concurrent slow streams, 0 errors", f"{r.get('ok', 0)} ok, {r.get('failed', 0)} failed",
                    r.get("failed", 1) == 0 and r.get("ok") == r.get("streams")))
        if r.get("added_p99_us") is not None:
            out.append(("added inter-event delay p99 <= 1 ms (10,000 streams)",
                        f"{r['added_p99_us'] / 1000:.2f} ms", r["added_p99_us"] <= 1000))
    return out


def render(res):
    """The Markdown section (empty when no open-stream row ran)."""
    if not res:
        return []
    kib = lambda v: "-" if v is None else f"{v:.1f}"
    mib = lambda kb: "-" if not kb else f"{kb / 1024:.1f}"
    x = lambda v: "-" if v is None else f"{v:.2f}x"
    ms = lambda us: "-" if us is None else f"{us / 1000:.2f}"
    L = ["", "## Open streams (issue 20)", "",
         f"Slow SSE streams held open at once: the upstream writes one chat-completion chunk every {INTERVAL_MS} ms "
         f"({EVENTS} per stream); resident memory of the server before the load, at its most while every stream "
         f"was open, and {AFTER_SECS} s after the last stream ended and the client closed its connections. "
         "*Per stream* = (all open - idle) / streams. *Idle connection* (h2c rows): RSS "
         f"{AFTER_SECS} s after the last stream ended with the client's connections still open, minus *after*, "
         "divided by the connections. "
         "Lateness = when an event reached the client - when the upstream wrote it; *added* = minus the direct row's. "
         "10k rows reach the proxy over h2c (the machine's hard limit is 20,000 descriptors per process; HTTP/1.1 "
         "would need one per side per stream), the proxy reaches the upstream over HTTP/1.1. "
         "*p99 opening / all open*: the events the upstream wrote while streams were still being opened (the ramp: "
         "the proxy also sets up new streams then) and after the last one was opened.", "",
         "| row | streams | ok / failed | idle RSS MiB | all open MiB | per stream KiB | x nginx | x Pingora | "
         f"{AFTER_SECS} s after MiB | idle connection KiB | lateness p50 / p99 / max ms | p99 opening / all open ms | "
         "added p99 ms |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ROWS:
        r = res.get(name)
        if r is None:
            continue
        if "late_us" not in r:
            L.append(f"| {LABELS[name]} | - | {r.get('error', 'no result')} | | | | | | | | | | |")
            continue
        rss, late = r.get("rss_kb", {}), r["late_us"]
        phases = " / ".join(ms((r.get(k) or {}).get("p99")) for k in ("late_opening_us", "late_all_open_us"))
        L.append(f"| {LABELS[name]} | {r['streams']:,} | {r['ok']:,} / {r['failed']} | {mib(rss.get('idle'))} | "
                 f"{mib(rss.get('all_open'))} | {kib(r.get('per_stream_kb')) if r['kind'] != 'direct' else '-'} | "
                 f"{x(r.get('per_stream_vs_nginx'))} | {x(r.get('per_stream_vs_pingora'))} | {mib(rss.get('after'))} | "
                 f"{kib(r.get('idle_conn_kb'))} | {ms(late['p50'])} / {ms(late['p99'])} / {ms(late['max'])} | "
                 f"{phases} | {ms(r.get('added_p99_us'))} |")
    L += render_events(res)
    t = targets(res)
    if t:
        L += ["", "| open-stream target | measured | met |", "|---|---|---|"]
        L += [f"| {n} | {v} | {'yes' if ok else '**no**'} |" for n, v, ok in t]
    return L


def render_events(res):
    """The instructions-per-event table (empty when none of its rows ran)."""
    rows = [n for n in EVENT_ROWS if n in res]
    if not rows:
        return []
    n = lambda v: "-" if v is None else f"{v:,.0f}"
    x = lambda v: "" if v is None else f" ({v:.2f}x)"
    L = ["", "### Instructions per relayed event and per stream (callgrind)", "",
         f"What lateness is made of, counted exactly: {EVENT_STREAMS} streams through the proxy under valgrind, the "
         f"upstream writing one event every {INTERVAL_MS} ms, {EVENT_COUNTS[0]} events per stream in one run and "
         f"{EVENT_COUNTS[1]} in another (a fresh process each, 20 streams of warm-up first). *Per event* = the "
         "difference of the two runs' user-space instructions over the difference of their events: reading one event "
         "from the upstream and writing it to the client, wake-ups included. *Per stream* = the shorter run's count "
         "beyond its events, over its streams: the request, the upstream connection, the end of the stream. "
         "x = against nginx with the same client protocol. While thousands of streams are open, every event a "
         "proxy relays waits behind the others it is relaying (and, during the ramp, behind the streams being "
         "set up): the added inter-event p99 above grows with these two figures.", "",
         "| row | instructions / event | instructions / stream | streams ok |", "|---|---|---|---|"]
    for name in rows:
        r = res[name]
        ok = " / ".join(str((v or {}).get("ok", "-")) for v in r.get("runs", {}).values())
        if "per_event" not in r:
            L.append(f"| {EVENT_LABELS[name]} | {r.get('error', 'no result')} | | {ok} |")
            continue
        L.append(f"| {EVENT_LABELS[name]} | {n(r['per_event'])}{x(r.get('per_event_vs_nginx'))} | "
                 f"{n(r.get('per_stream'))}{x(r.get('per_stream_vs_nginx'))} | {ok} |")
    return L

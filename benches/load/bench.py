#!/usr/bin/env python3
"""Helper of benches/load/run (stdlib only).

Subcommands:
  cpus                         first two CPUs this process may run on ("SRV LOAD"), and the count
  ports N [TAKEN ...]          N free loopback TCP ports (none of TAKEN)
  gen DIR UP NGX BR            write the upstream/proxy nginx configs, bitrouter.yaml, bodies, wrk script
  upstls-gen DIR UP UPTLS UPH2 NGX BR   the HTTPS-upstream rows' configs (upstream_tls.py)
  open-gen DIR UP NGX NGX_H2C BR         the open-stream rows' configs (open_streams.py)
  open-rows                    the open-stream rows: `name kind streams ramp_ms h2c_conns` per line
  event-rows / events-summary DIR   the instructions-per-event rows / one row's figures
  snap PID [PID ...]           JSON snapshot: CPU ticks and memory of the process trees, /proc/stat
  quiet PID A B                two snapshots 0.5 s apart, into files A and B
  check KIND FILE              validate a sanity response body (chat | sse)
  autorate RAW CAP NAME...      min(CAP, half the slowest throughput of the named scenarios)
  ir-summary DIR               one line: instructions per request of a callgrind run
  stallwatch FILE              until killed: append `monotonic_start seconds` to FILE whenever a 50 ms
                               sleep took over 0.5 s (the machine, or this process, was stalled)
  report RAW OUTDIR            parse RAW/<scenario>/*, write OUTDIR/latest{,-quick}.{md,json} and a dated
                               copy; exit 3 if any scenario saw a non-2xx response or a socket error
"""

import json
import os
import re
import socket
import sys
import time

# Parsers of the tools' outputs, and the HTTPS-upstream rows: modules beside this file.
import open_streams
import upstream_client
import upstream_tls
from parsers import load_json, median_run, parse_curl, parse_ir, parse_oha, parse_soak, parse_wrk

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# --------------------------------------------------------------------------------------------
# Fixed bodies of the mock upstream (no `$`, `'` or `\` in them: they are nginx `return` strings).

ANSWER = (
    "Connection pooling keeps a small set of already-open connections to the upstream and hands "
    "them out per request, so most requests skip the TCP (and TLS) handshake entirely. That cuts "
    "tail latency, lowers CPU spent on connection setup, and protects the upstream from bursts "
    "of new connections when traffic spikes."
)

OPENAI_RESPONSE = {
    "id": "chatcmpl-bench00000000000000000001",
    "object": "chat.completion",
    "created": 1735689600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 31,
        "completion_tokens": 58,
        "total_tokens": 89,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_bench0001",
}

ANTHROPIC_RESPONSE = {
    "id": "msg_bench00000000000000000001",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": ANSWER}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 31,
        "output_tokens": 58,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    },
}

# An OpenAI embeddings answer: one 384-dimension vector (the size of the small open embedding
# models inference fleets serve), fixed values.
EMBED_DIM = 384
EMBED_RESPONSE = {
    "object": "list",
    "data": [{
        "object": "embedding",
        "index": 0,
        "embedding": [round(((i * 7919) % 2000) / 1000.0 - 1.0, 6) for i in range(EMBED_DIM)],
    }],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 17, "total_tokens": 17},
}

# What the plain reverse-proxy route's upstream answers (any service behind the same nginx).
PLAIN_RESPONSE = {"ok": True, "service": "plain", "note": "a non-LLM service behind the proxy"}

SSE_EVENTS = 50  # data events, [DONE] included


def sse_body():
    words = ANSWER.split(" ")
    base = {
        "id": "chatcmpl-bench00000000000000000002",
        "object": "chat.completion.chunk",
        "created": 1735689600,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench0001",
    }
    events = []

    def ev(delta, finish=None):
        e = dict(base)
        e["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        events.append(e)

    ev({"role": "assistant", "content": "", "refusal": None})
    n_content = SSE_EVENTS - 3  # role, finish, [DONE]
    per = max(1, -(-len(words) // n_content))
    chunks = [" ".join(words[i : i + per]) for i in range(0, len(words), per)]
    while len(chunks) < n_content:
        chunks.append(".")
    for i, c in enumerate(chunks[:n_content]):
        ev({"content": (c if i == 0 else " " + c)})
    ev({}, "stop")
    lines = ["data: " + json.dumps(e, separators=(",", ":")) + "\n\n" for e in events]
    lines.append("data: [DONE]\n\n")
    return "".join(lines)


def request_body(model, stream=False, pad_bytes=0):
    user = "Summarise the benefits of connection pooling for an HTTP reverse proxy in two sentences."
    if pad_bytes:
        para = (
            "Appendix. The following document is provided as context for the question. It repeats "
            "a representative paragraph of prose so that the request body is large, as it is for an "
            "agent that sends a long file or transcript with its prompt. "
        )
        doc = (para * (pad_bytes // len(para) + 1))[:pad_bytes]
        user = doc + "\n\n" + user
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant for infrastructure engineers."},
            {"role": "user", "content": user},
        ],
        "max_tokens": 256,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":"))


def nginx_str(s):
    for bad in ("$", "'", "\\"):
        if bad in s:
            raise SystemExit(f"mock body contains {bad!r}, which nginx would interpret")
    return "'" + s + "'"


def nginx_common(prefix):
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 8192; }}
"""


def nginx_upstream(name, port):
    """An upstream block for a proxy nginx: the mock on `port`, pooled connections kept."""
    return f"""    upstream {name} {{
        server 127.0.0.1:{port};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}
"""


def nginx_http_common(prefix):
    return f"""    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    client_max_body_size 64m;
    client_body_buffer_size 256k;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
"""


def mock_stream_and_404(d):
    """The mock upstream's SSE location and its 404 for anything else (plain and TLS servers)."""
    return f"""        # Too long for a `return` string: a static file, and a POST's 405 turned into a GET of it.
        location = /stream/v1/chat/completions {{
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            alias {d}/sse.txt;
            error_page 405 =200 $uri;
        }}
        location / {{
            default_type application/json;
            return 404 '{{"error":{{"message":"mock upstream: unexpected path","type":"not_found"}}}}';
        }}
"""


def make_cert(d):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1, used by nginx and bitrouter alike (the
    HTTPS rows compare the same certificate, key type and TLS 1.3 on both)."""
    import subprocess

    cert, key = os.path.join(d, "tls-cert.pem"), os.path.join(d, "tls-key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return cert, key


def gen(d, up, ngx, br, ngx_tls, br_tls):
    d = os.path.abspath(d)
    for sub in ("upstream", "proxy"):
        for s in ("logs", "tmp"):
            os.makedirs(os.path.join(d, sub, s), exist_ok=True)
    up_prefix = os.path.join(d, "upstream")
    px_prefix = os.path.join(d, "proxy")

    oa = json.dumps(OPENAI_RESPONSE, separators=(",", ":"))
    an = json.dumps(ANTHROPIC_RESPONSE, separators=(",", ":"))
    em = json.dumps(EMBED_RESPONSE, separators=(",", ":"))
    pl = json.dumps(PLAIN_RESPONSE, separators=(",", ":"))
    cert, key = make_cert(d)
    sse = sse_body()
    with open(os.path.join(d, "sse.txt"), "w") as f:
        f.write(sse)
    with open(os.path.join(d, "upstream.conf"), "w") as f:
        f.write(nginx_common(up_prefix))
        f.write("http {\n" + nginx_http_common(up_prefix))
        # More server blocks from other modules (upstream_tls.py: the HTTPS upstreams).
        f.write(f"    include {d}/upstream.d/*.conf;\n")
        f.write(f"""    server {{
        listen 127.0.0.1:{up} backlog=8192;
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 {nginx_str(oa)};
        }}
        location = /v1/messages {{
            default_type application/json;
            return 200 {nginx_str(an)};
        }}
        location = /v1/embeddings {{
            default_type application/json;
            return 200 {nginx_str(em)};
        }}
        location /plain/ {{
            default_type application/json;
            return 200 {nginx_str(pl)};
        }}
{mock_stream_and_404(d)}    }}
}}
""")
    with open(os.path.join(d, "proxy.conf"), "w") as f:
        f.write(nginx_common(px_prefix))
        f.write("http {\n" + nginx_http_common(px_prefix))
        f.write(nginx_upstream("llm", up) + f"""    server {{
        listen 127.0.0.1:{ngx} backlog=8192;
        # The HTTPS rows: the same server on a TLS port, the certificate bitrouter uses too.
        listen 127.0.0.1:{ngx_tls} ssl backlog=8192;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {{
            proxy_pass http://llm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location /stream/ {{
            proxy_pass http://llm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
""")
    with open(os.path.join(d, "bitrouter.yaml"), "w") as f:
        f.write(f"""# Generated by benches/load/bench.py: every provider is the mock nginx upstream.
server:
  listen: 127.0.0.1:{br}
  threads: 1
  log_level: warn
  skip_auth: true

providers:
  mock-openai:
    api_base: http://127.0.0.1:{up}/v1
    api_key: dummy
    api_protocol: chat_completions
    models:
      - id: gpt-4o-mini
      - id: text-embedding-3-small
  mock-anthropic:
    api_base: http://127.0.0.1:{up}/v1
    api_key: dummy
    api_protocol: messages
    models:
      - id: claude-sonnet-4-5
  mock-stream:
    api_base: http://127.0.0.1:{up}/stream/v1
    api_key: dummy
    api_protocol: chat_completions
    models:
      - id: gpt-4o-mini-stream
""")
    # The same router with every built-in guardrail on in both directions (redact; the
    # commands warn): the "guardrails on" rows, compared with the pass-through without them.
    actions = "".join(
        f"    {rule}: {'warn' if rule == 'suspicious_commands' else 'redact'}\n"
        for rule in ("api_keys", "private_keys", "credentials", "pii_emails", "pii_phone_numbers",
                     "ip_addresses", "suspicious_commands", "credit_cards", "iban")
    )
    with open(os.path.join(d, "bitrouter.yaml")) as f:
        base = f.read()
    with open(os.path.join(d, "bitrouter-guard.yaml"), "w") as f:
        f.write(base + "\nguardrails:\n  upgoing:\n" + actions + "  downgoing:\n" + actions)
    # The same router without the request ledger (on by default: SQLite beside the config):
    # the "ledger off" row the pass-through is compared with.
    with open(os.path.join(d, "bitrouter-noledger.yaml"), "w") as f:
        f.write(base + "\ndatabase:\n  enabled: false\n")
    # The same router with auth on and every request made with a virtual key whose policy has a
    # monthly budget (so each request is looked up, reserved against and settled): the "keys
    # on" rows, compared with the pass-through (skip_auth). The model gets a price (a budget
    # needs one); the key is minted by `run` with `bitrouter key sign`.
    keyed = base.replace("skip_auth: true", "skip_auth: false").replace(
        "      - id: gpt-4o-mini\n",
        "      - id: gpt-4o-mini\n"
        "        pricing: { input_micro_usd_per_token: 0.15, output_micro_usd_per_token: 0.6 }\n")
    with open(os.path.join(d, "bitrouter-keys.yaml"), "w") as f:
        f.write(keyed + "\ndatabase:\n  url: sqlite://./bitrouter-keys.db\n")
    # HTTPS termination: the same router with a plain loopback listener (readiness checks) and a
    # TLS one (the certificate nginx uses too).
    tls = base.replace(f"  listen: 127.0.0.1:{br}\n",
                       f"  listen:\n    - {{address: 127.0.0.1:{br}, tls: false}}\n    - 127.0.0.1:{br_tls}\n"
                       f"  tls:\n    cert_file: {cert}\n    key_file: {key}\n")
    assert tls != base
    with open(os.path.join(d, "bitrouter-tls.yaml"), "w") as f:
        f.write(tls)
    # A plain reverse-proxy route (Pingora's own proxy loop) to the upstream's /plain/ service.
    with open(os.path.join(d, "bitrouter-route.yaml"), "w") as f:
        f.write(base + f"\nroutes:\n  - name: plain\n    match: {{path_prefix: /plain/}}\n"
                       f"    upstream: http://127.0.0.1:{up}\n")
    os.makedirs(os.path.join(d, "policies"), exist_ok=True)
    with open(os.path.join(d, "policies", "bench.yaml"), "w") as f:
        f.write("description: the load benchmark's key\nmax_spend_micro_usd: 1000000000000000\n")
    bodies = {
        "chat.json": request_body("gpt-4o-mini"),
        "cross.json": request_body("claude-sonnet-4-5"),
        "stream.json": request_body("gpt-4o-mini-stream", stream=True),
        "big.json": request_body("gpt-4o-mini", pad_bytes=150 * 1024),
        "embed.json": json.dumps({
            "model": "text-embedding-3-small",
            "input": "Connection pooling keeps already-open connections to the upstream for reuse.",
            "encoding_format": "float",
        }, separators=(",", ":")),
        "plain.json": json.dumps({"event": "page_view", "path": "/docs/install", "ms": 42}, separators=(",", ":")),
    }
    for name, b in bodies.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(b)
    with open(os.path.join(d, "post.lua"), "w") as f:
        f.write(WRK_LUA)
    sizes = {k: len(v) for k, v in bodies.items()}
    sizes.update({"resp_openai": len(oa), "resp_anthropic": len(an), "resp_sse": len(sse),
                  "resp_embed": len(em), "resp_plain": len(pl)})
    with open(os.path.join(d, "sizes.json"), "w") as f:
        json.dump(sizes, f)


WRK_LUA = r"""-- POST the file named by $WRK_BODY, or cycle through the files in $WRK_BODIES (separated by
-- `:`) one request each; print a JSON summary line (prefixed WRKJSON) at the end.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local b = f:read("*a")
  f:close()
  return b
end
local list = os.getenv("WRK_BODIES")
if list and list ~= "" then
  local reqs = {}
  for path in string.gmatch(list, "[^:]+") do
    reqs[#reqs + 1] = wrk.format("POST", nil, nil, slurp(path))
  end
  local i = 0
  request = function()
    i = i % #reqs + 1
    return reqs[i]
  end
else
  wrk.body = slurp(os.getenv("WRK_BODY"))
end
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%.1f,"p90":%.1f,"p99":%.1f,"max":%.1f,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""

# --------------------------------------------------------------------------------------------
# /proc sampling


def _read(path):
    with open(path) as f:
        return f.read()


def proc_tree(pids):
    """The given pids and all their descendants."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = _read(f"/proc/{name}/stat")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def snap(pids):
    procs = []
    for p in proc_tree(pids):
        try:
            stat = _read(f"/proc/{p}/stat")
            status = _read(f"/proc/{p}/status")
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2 :].split()
        mem = {}
        for line in status.splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                mem[k] = int(v.split()[0])
        procs.append(
            {
                "pid": p,
                "comm": stat[stat.index("(") + 1 : stat.rindex(")")],
                "ticks": int(f[11]) + int(f[12]),
                "uticks": int(f[11]),
                "sticks": int(f[12]),
                "rss_kb": mem.get("VmRSS", 0),
                "hwm_kb": mem.get("VmHWM", 0),
                "threads": mem.get("Threads", 0),
            }
        )
    cpus = {}
    for line in _read("/proc/stat").splitlines():
        if re.match(r"cpu\d+ ", line):
            parts = line.split()
            v = [int(x) for x in parts[1:]]
            idle = v[3] + (v[4] if len(v) > 4 else 0)
            cpus[parts[0]] = {"total": sum(v[:8]), "idle": idle, "irq": v[5] + v[6], "steal": v[7] if len(v) > 7 else 0}
    return {
        "t": time.monotonic(),
        "ticks": sum(p["ticks"] for p in procs),
        "uticks": sum(p["uticks"] for p in procs),
        "sticks": sum(p["sticks"] for p in procs),
        "rss_kb": sum(p["rss_kb"] for p in procs),
        "hwm_kb": sum(p["hwm_kb"] for p in procs),
        "procs": procs,
        "cpus": cpus,
        "loadavg": _read("/proc/loadavg").split()[:3],
    }


STALL_SLEEP = 0.05
STALL_MIN = 0.5


def stallwatch(path):
    """Record every moment the machine stopped running us: a VM paused by its host, or a core
    starved. Load generators count the requests in flight across such a gap as timeouts, and the
    report should say when a failure coincides with one rather than leave it unexplained."""
    with open(path, "a") as f:
        while True:
            t0 = time.monotonic()
            time.sleep(STALL_SLEEP)
            dt = time.monotonic() - t0
            if dt >= STALL_MIN:
                f.write(f"{t0:.3f} {dt:.3f}\n")
                f.flush()


def parse_stalls(path):
    """[(monotonic_start, seconds)] from a stallwatch file (none when it is missing)."""
    try:
        text = _read(path)
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            t, dt = map(float, line.split())
        except ValueError:
            continue
        out.append((t, dt))
    return out


def check_body(kind, path):
    text = _read(path)
    if kind == "chat":
        j = json.loads(text)
        content = j["choices"][0]["message"]["content"]
        assert content and "pooling" in content, "unexpected content"
    elif kind == "sse":
        events = [l for l in text.splitlines() if l.startswith("data:")]
        assert text.rstrip().endswith("data: [DONE]"), "stream does not end with [DONE]"
        assert len(events) >= SSE_EVENTS - 2, f"only {len(events)} events"
        for e in events[:-1]:
            json.loads(e[5:])
    elif kind == "sse-guarded":
        # Guardrails hold back up to their window, so deltas arrive coalesced: the stream must
        # be well formed and complete, and carry the whole text, not the same event count.
        events = [l for l in text.splitlines() if l.startswith("data:")]
        assert text.rstrip().endswith("data: [DONE]"), "stream does not end with [DONE]"
        assert len(events) >= 3, f"only {len(events)} events"
        content = ""
        for e in events[:-1]:
            j = json.loads(e[5:])
            for c in j.get("choices", []):
                content += (c.get("delta") or {}).get("content") or ""
        assert "pooling" in content, "the streamed text is incomplete"
    elif kind == "embed":
        j = json.loads(text)
        assert j["object"] == "list" and len(j["data"][0]["embedding"]) == EMBED_DIM, "unexpected embedding"
    elif kind == "plain":
        assert json.loads(text).get("service") == "plain", "unexpected plain body"
    elif kind == "any":
        pass  # a reference server with a fixed answer: its status (checked by the caller) is enough
    else:
        raise SystemExit(f"unknown check {kind}")


# --------------------------------------------------------------------------------------------
# Report

JSON_SCENARIOS = ["direct", "nginx", "bitrouter-pass", "bitrouter-cross", "bitrouter-guard",
                  "bitrouter-noledger", "bitrouter-keys"]
STREAM_SCENARIOS = ["direct-stream", "nginx-stream", "bitrouter-stream", "bitrouter-guard-stream"]
BIG_SCENARIOS = ["nginx-big", "bitrouter-big"]
# Issue 19's rows, each bitrouter row against nginx doing the same job: HTTPS termination (same
# certificate), an embeddings call, a plain reverse-proxy route.
DC_SCENARIOS = ["nginx-tls", "bitrouter-tls", "nginx-embed", "bitrouter-embed", "nginx-route", "bitrouter-route"]
# Pingora itself, for reading the bitrouter rows (proxy/examples/pingora_floor.rs): what a fixed
# answer costs in Pingora's server, and what Pingora's stock proxy loop costs per request.
REFERENCE_SCENARIOS = ["pingora-static", "pingora-proxy"]
SOAK = "bitrouter-soak"
COMPARATOR = {
    "pingora-static": "nginx",
    "pingora-proxy": "nginx",
    SOAK: "nginx",
    "direct": "nginx",
    "nginx": "nginx",
    "bitrouter-pass": "nginx",
    "bitrouter-cross": "nginx",
    "direct-stream": "nginx-stream",
    "nginx-stream": "nginx-stream",
    "bitrouter-stream": "nginx-stream",
    "bitrouter-guard": "nginx",
    "bitrouter-noledger": "nginx",
    "bitrouter-keys": "nginx",
    "bitrouter-guard-stream": "nginx-stream",
    "nginx-big": "nginx-big",
    "bitrouter-big": "nginx-big",
    "nginx-tls": "nginx-tls",
    "bitrouter-tls": "nginx-tls",
    "nginx-embed": "nginx-embed",
    "bitrouter-embed": "nginx-embed",
    "nginx-route": "nginx-route",
    "bitrouter-route": "nginx-route",
}
FLOOR = {s: ("direct-stream" if s in STREAM_SCENARIOS else "direct") for s in COMPARATOR}
COMPARATOR.update(upstream_tls.COMPARATOR)
FLOOR.update(upstream_tls.FLOOR)


def cpu_busy(a, b, cpu, field=None):
    """% of `cpu` busy between snapshots a and b (or spent in `field`, e.g. irq+softirq)."""
    ca, cb = a["cpus"].get(cpu), b["cpus"].get(cpu)
    if not ca or not cb:
        return None
    tot = cb["total"] - ca["total"]
    if field:
        return 100.0 * (cb.get(field, 0) - ca.get(field, 0)) / tot if tot > 0 else None
    idle = cb["idle"] - ca["idle"]
    return 100.0 * (tot - idle) / tot if tot > 0 else None


def scenario(raw, name, meta):
    d = os.path.join(raw, name)
    if not os.path.isdir(d):
        return None
    r = {"name": name}
    idle = load_json(os.path.join(d, "snap_idle.json"))
    before = load_json(os.path.join(d, "snap_before.json"))
    after = load_json(os.path.join(d, "snap_after.json"))
    end = load_json(os.path.join(d, "snap_end.json"))
    up_b = load_json(os.path.join(d, "up_before.json"))
    up_a = load_json(os.path.join(d, "up_after.json"))
    quiet = load_json(os.path.join(d, "snap_quiet_a.json")), load_json(os.path.join(d, "snap_quiet_b.json"))
    wrk = parse_wrk(os.path.join(d, "wrk.txt"))
    r["throughput"] = wrk
    r["c1"] = parse_oha(os.path.join(d, "oha_c1.json"))
    reps = []
    i = 1
    while os.path.exists(os.path.join(d, f"oha_rate.{i}.json")):
        reps.append(parse_oha(os.path.join(d, f"oha_rate.{i}.json")) or {"parse_error": f"oha_rate.{i}.json"})
        i += 1
    for i, x in enumerate(reps, 1):
        a = load_json(os.path.join(d, f"rate_before.{i}.json"))
        b = load_json(os.path.join(d, f"rate_after.{i}.json"))
        if a and b and isinstance(x, dict):
            x["steal_pct"] = max(
                (cpu_busy(a, b, "cpu" + c, "steal") or 0) for c in (meta["srv_cpu"], meta["load_cpu"])
            )
    r["rate_runs"] = reps
    r["rate"] = median_run(reps)
    r["stream"] = parse_curl(os.path.join(d, "curl.txt"))
    r["soak"] = parse_soak(os.path.join(d, "rss.txt"))
    r["ir"] = parse_ir(d)
    r["process"] = (before or {}).get("procs")
    if idle:
        r["idle_rss_kb"] = idle["rss_kb"]
    rate_b = load_json(os.path.join(d, "rate_before.1.json"))
    rate_a = load_json(os.path.join(d, f"rate_after.{len(reps)}.json")) if reps else None
    peaks = [x["hwm_kb"] for x in (end, rate_a) if x]
    if peaks:
        r["peak_rss_kb"] = max(peaks)
    ok = sum((x.get("ok") or 0) for x in reps)
    if rate_b and rate_a and ok and not r["name"].startswith("direct"):
        r["rate_cpu_s_per_10k"] = (rate_a["ticks"] - rate_b["ticks"]) / CLK_TCK / ok * 10000
    if before and after and wrk and wrk.get("requests"):
        dt = after["t"] - before["t"]
        ticks = after["ticks"] - before["ticks"]
        r["cpu_s"] = ticks / CLK_TCK
        r["cpu_s_per_10k"] = ticks / CLK_TCK / wrk["requests"] * 10000
        r["proc_cpu_pct"] = 100.0 * ticks / CLK_TCK / dt if dt > 0 else None
        # User vs kernel time per request: the kernel's share (syscalls, loopback TCP) is what any
        # proxy pays for the same socket work; the user share is the proxy's own code.
        for key, field in (("user_us_per_req", "uticks"), ("sys_us_per_req", "sticks")):
            r[key] = (after[field] - before[field]) / CLK_TCK / wrk["requests"] * 1e6
        r["srv_core_busy_pct"] = cpu_busy(before, after, "cpu" + meta["srv_cpu"])
        r["load_core_busy_pct"] = cpu_busy(before, after, "cpu" + meta["load_cpu"])
        r["srv_core_irq_pct"] = cpu_busy(before, after, "cpu" + meta["srv_cpu"], "irq")
        r["steal_pct"] = {
            c: cpu_busy(before, after, "cpu" + c, "steal") for c in (meta["srv_cpu"], meta["load_cpu"])
        }
        if r["srv_core_busy_pct"] is not None and r["proc_cpu_pct"] is not None:
            r["others_on_srv_core_pct"] = max(
                0.0, r["srv_core_busy_pct"] - r["proc_cpu_pct"] - (r["srv_core_irq_pct"] or 0)
            )
        if up_b and up_a:
            r["upstream_cpu_pct"] = 100.0 * (up_a["ticks"] - up_b["ticks"]) / CLK_TCK / dt
    if all(quiet):
        r["background_busy_pct"] = {
            c: cpu_busy(quiet[0], quiet[1], c) for c in sorted(quiet[0]["cpus"])
        }
    errs = []
    try:
        r["server_log_warnings"] = _read(os.path.join(d, "server_warnings.txt")).splitlines()
    except OSError:
        r["server_log_warnings"] = []
    checks = [("throughput", r.get("throughput")), ("c1", r.get("c1")), ("stream", r.get("stream"))]
    checks += [("callgrind run", r.get("ir"))]
    checks += [(f"rate run {i + 1}", x) for i, x in enumerate(reps)]
    for key, x in checks:
        if not x:
            continue
        if x.get("parse_error"):
            errs.append(f"{key}: could not parse output")
        if x.get("non2xx"):
            errs.append(f"{key}: {x['non2xx']} non-2xx responses")
        if x.get("socket_errors"):
            errs.append(f"{key}: {x['socket_errors']} socket errors {x.get('errors')}")
    sanity = os.path.join(d, "sanity_failed.txt")
    if os.path.exists(sanity):
        errs.append("sanity check failed: " + _read(sanity).strip()[:300])
    r["failures"] = errs
    return r


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def g(d, *path):
    for p in path:
        if d is None:
            return None
        d = d.get(p) if isinstance(d, dict) else None
    return d


def figures(r, floor):
    f = {
        "rps_c64": g(r, "throughput", "rps"),
        "p99_c64_us": g(r, "throughput", "latency_us", "p99"),
        "p50_c1_us": g(r, "c1", "p50_us"),
        "p99_c1_us": g(r, "c1", "p99_us"),
        "p99_rate_us": g(r, "rate", "p99_us"),
        "rate_rps": g(r, "rate", "rps"),
        "cpu_s_per_10k": r.get("cpu_s_per_10k"),
        "rate_cpu_s_per_10k": r.get("rate_cpu_s_per_10k"),
        "user_us_per_req": r.get("user_us_per_req"),
        "sys_us_per_req": r.get("sys_us_per_req"),
        "idle_rss_kb": r.get("idle_rss_kb"),
        "peak_rss_kb": r.get("peak_rss_kb"),
        "ttfb_p50_us": g(r, "stream", "ttfb_p50_us"),
        "ttfb_p99_us": g(r, "stream", "ttfb_p99_us"),
        "ttlb_p50_us": g(r, "stream", "ttlb_p50_us"),
        "ttlb_p99_us": g(r, "stream", "ttlb_p99_us"),
        "instr_per_req": g(r, "ir", "per_request"),
    }
    if floor is not None and r["name"] != floor["name"]:
        for k in ("p50_c1_us", "p99_c1_us", "ttfb_p50_us", "ttlb_p50_us"):
            a, b = f.get(k), figures(floor, None).get(k)
            f["added_" + k] = None if a is None or b is None else a - b
    return f


def fmt_us(v):
    if v is None:
        return "–"
    if abs(v) >= 10000:
        return f"{v / 1000:.1f} ms"
    return f"{v:.0f} µs"


def fmt_n(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"


def fmt_x(v):
    return "" if v is None else f" ({v:.2f}×)"


def fmt_mib(kb):
    return "–" if kb is None else f"{kb / 1024:.1f}"


def attribute_stalls(r, stalls, d):
    """The stalls inside scenario `r`'s window (its server's first to last snapshot), also kept as
    `r["stalls"]`; a socket-error failure that coincides with one of 2 s or more (wrk's request
    timeout) says so."""
    first = load_json(os.path.join(d, "snap_idle.json")) or load_json(os.path.join(d, "snap_before.json"))
    last = load_json(os.path.join(d, "snap_end.json")) or load_json(os.path.join(d, "snap_after.json"))
    if not (first and last):
        return []
    mine = [s for s in stalls if first["t"] <= s[0] <= last["t"]]
    r["stalls"] = [{"at_s": round(t - first["t"], 1), "seconds": round(dt, 2)} for t, dt in mine]
    long = [s for s in mine if s[1] >= 2.0]
    if long:
        t, dt = max(long, key=lambda x: x[1])
        r["failures"] = [
            e + f" (coincides with a {dt:.1f} s stall of the whole machine {t - first['t']:.0f} s into the scenario: "
            "requests in flight across it count as timeouts)"
            if "socket errors" in e
            else e
            for e in r["failures"]
        ]
    return mine


SWAP = "bitrouter-swap"


def parse_swap(d):
    """The reload/restart row: the same fixed-rate oha run steady and with reloads every second
    and two restarts (swaps.txt: `seconds verb exit_code` per swap)."""
    if not os.path.isdir(d):
        return None
    steady = parse_oha(os.path.join(d, "oha_steady.json"))
    swap = parse_oha(os.path.join(d, "oha_swap.json"))
    verbs = []
    for line in _read(os.path.join(d, "swaps.txt")).splitlines():
        parts = line.split()
        if len(parts) == 3:
            verbs.append({"at_s": float(parts[0]), "verb": parts[1], "rc": int(parts[2])})
    out = {
        "steady": steady,
        "swap": swap,
        "reloads": sum(1 for v in verbs if v["verb"] == "reload"),
        "restarts": sum(1 for v in verbs if v["verb"] == "restart"),
        "verb_failures": sum(1 for v in verbs if v["rc"] != 0),
        "verbs": verbs,
    }
    failed = None
    if swap:
        failed = (swap.get("non2xx") or 0) + (swap.get("socket_errors") or 0)
    out["failed_requests"] = failed
    p99s, p99w = g(steady, "p99_us"), g(swap, "p99_us")
    out["p99_ratio"] = (p99w / p99s) if p99s and p99w else None
    return out


def report(raw, outdir):
    meta = load_json(os.path.join(raw, "meta.json")) or {}
    sizes = load_json(os.path.join(raw, "sizes.json")) or {}
    res = {}
    for name in JSON_SCENARIOS + REFERENCE_SCENARIOS + STREAM_SCENARIOS + BIG_SCENARIOS + DC_SCENARIOS + upstream_tls.SCENARIOS + [SOAK]:
        r = scenario(raw, name, meta)
        if r:
            res[name] = r
            if name in upstream_tls.SCENARIOS:
                r["upstream_tls"] = upstream_tls.parse(raw, name)
    figs = {}
    for name, r in res.items():
        figs[name] = figures(r, res.get(FLOOR[name]))
    ratios = {}
    for name in res:
        comp = figs.get(COMPARATOR[name], {})
        ratios[name] = {k: ratio(v, comp.get(k)) for k, v in figs[name].items() if isinstance(v, (int, float))}

    stalls = parse_stalls(os.path.join(raw, "stalls.txt"))
    stall_scenario = {}
    for name, r in res.items():
        for s in attribute_stalls(r, stalls, os.path.join(raw, name)):
            stall_scenario.setdefault(s, name)
    failures = {n: r["failures"] for n, r in res.items() if r["failures"]}
    swap = parse_swap(os.path.join(raw, SWAP))
    if swap:
        errs = []
        if swap["failed_requests"]:
            errs.append(f"{swap['failed_requests']} failed requests across reloads and restarts: "
                        f"{g(swap, 'swap', 'status_codes')} {g(swap, 'swap', 'errors')}")
        if swap["verb_failures"]:
            errs.append(f"{swap['verb_failures']} reload/restart commands failed (see swaps.txt)")
        if swap["swap"] is None:
            errs.append("no oha result for the swap run")
        if errs:
            failures[SWAP] = errs
    notes = upstream_tls.notes(res)
    open_res = open_streams.parse(raw)
    for n in open_streams.failed(open_res):
        failures[n] = [f"{open_res[n].get('failed', 0)} streams failed: {open_res[n].get('errors') or open_res[n].get('error')}"]
    upc = load_json(os.path.join(raw, "upstream-client", "result.json"))
    if upc and upstream_client.failed(upc):
        failures["upstream-client"] = upstream_client.failed(upc)
    if meta.get("only"):
        notes.insert(0, f"PARTIAL RUN (`--only {meta['only']}`): every other scenario, the soak and the reload/restart row were skipped.")
    if meta.get("stallwatch"):
        if stalls:
            longest = max(stalls, key=lambda x: x[1])
            where = stall_scenario.get(longest)
            notes.append(
                f"Machine stalls: {len(stalls)} time(s) a 50 ms sleep of a watcher (real-time priority) took "
                f"over {STALL_MIN} s; the longest {longest[1]:.1f} s"
                + (f", during {label(where)}" if where else "")
                + ". Nothing on this machine runs in such a gap: figures of the scenarios it falls in are "
                "worse by it (see each scenario's `stalls` in the JSON)."
            )
        else:
            notes.append(f"Machine stalls: none (no 50 ms sleep of a watcher at real-time priority took over {STALL_MIN} s).")
    # Is the upstream (direct) faster than every proxy?
    for floor_name, group in (("direct", JSON_SCENARIOS), ("direct-stream", STREAM_SCENARIOS)):
        if floor_name not in figs:
            continue
        fl = figs[floor_name]
        for n in group[1:]:
            if n not in figs:
                continue
            if (figs[n]["rps_c64"] or 0) >= (fl["rps_c64"] or 0):
                notes.append(f"WARNING: {n} throughput is not below {floor_name}: the upstream/load generator may be the bottleneck.")
            if (figs[n]["p50_c1_us"] or 0) <= (fl["p50_c1_us"] or 0):
                notes.append(f"WARNING: {n} p50 latency at c=1 is not above {floor_name}.")
    # Shown, not assumed: the upstream serves faster than any proxy and has CPU to spare.
    proxies = [n for n in res if not n.startswith("direct")]
    up_max = max((res[n].get("upstream_cpu_pct") or 0 for n in proxies), default=None)
    for floor_name, group in (("direct", JSON_SCENARIOS), ("direct-stream", STREAM_SCENARIOS)):
        fl = figs.get(floor_name, {}).get("rps_c64")
        best = max((figs[n]["rps_c64"] or 0 for n in group[1:] if n in figs), default=0)
        if fl and best:
            notes.append(
                f"Upstream check ({floor_name}): the upstream served {fl:,.0f} req/s direct, {fl / best:.1f}× the fastest proxy "
                f"({best:,.0f} req/s), with the load generator on the same core."
            )
    if up_max is not None:
        notes.append(f"Upstream check: during the proxy runs the upstream nginx used at most {up_max:.0f}% of its core.")
    for n, r in res.items():
        busy = r.get("srv_core_busy_pct")
        if n.startswith("direct") or busy is None:
            continue
        if busy < 85 and (r.get("load_core_busy_pct") or 0) > 90:
            notes.append(
                f"NOTE: {n}: the proxy core was only {busy:.0f}% busy while the load-generator/upstream core was "
                f"{r['load_core_busy_pct']:.0f}% busy: its throughput is bounded by the harness, not the proxy "
                "(CPU per request is still valid)."
            )
        others = r.get("others_on_srv_core_pct")
        if others is not None and others > 10:
            notes.append(
                f"WARNING: {n}: other processes took {others:.0f}% of the server core during the throughput run: figures are noisy."
            )
    busy_before = [
        max((v for v in (r.get("background_busy_pct") or {}).values() if v is not None), default=0) for r in res.values()
    ]
    if busy_before and max(busy_before) > 10:
        notes.append(
            f"WARNING: the machine was not idle: other processes kept a core up to {max(busy_before):.0f}% busy between runs "
            "(see the last table). The benchmark's processes run at a higher priority (see Placement), but caches and memory bandwidth are shared: "
            "rerun on a quiet machine for publishable figures."
        )
    stolen = []
    for n, r in res.items():
        st = max((x.get("steal_pct") or 0 for x in r.get("rate_runs") or []), default=0)
        st_tp = max((v or 0 for v in (r.get("steal_pct") or {}).values()), default=0)
        if max(st, st_tp) > 1:
            stolen.append(f"{n} {max(st, st_tp):.1f}%")
    if stolen:
        notes.append(
            "WARNING: the hypervisor took CPU time from this VM during the runs (steal, worst core): "
            + ", ".join(stolen)
            + ". A descheduled vCPU stalls every request in flight for milliseconds: p99 figures, the fixed-rate ones "
            "above all, then measure the host rather than the proxy."
        )
    rate = meta.get("rate")
    for n in res:
        rps = figs[n]["rps_c64"]
        if rate and rps and rps < float(rate) * 1.15 and n in JSON_SCENARIOS + STREAM_SCENARIOS + DC_SCENARIOS + upstream_tls.SCENARIOS:
            notes.append(
                f"WARNING: {n} saturates at {rps:,.0f} req/s, close to or below the fixed rate {rate}/s: its p99 at that rate is a saturated figure."
            )
        ach = figs[n].get("rate_rps")
        if rate and ach and ach < float(rate) * 0.95:
            notes.append(f"WARNING: {n} reached only {ach:,.0f} req/s of the fixed rate {rate}/s.")
        if res[n]["server_log_warnings"]:
            notes.append(f"NOTE: {n}: {len(res[n]['server_log_warnings'])} warning/error lines in the server log (see JSON).")
        dropped = ledger_dropped(res[n]["server_log_warnings"])
        if dropped:
            notes.append(
                f"WARNING: {n}: the ledger dropped {dropped:,} rows (its queue was full): the writer fell behind, "
                "so this row's figures leave out part of the ledger's work."
            )

    out = {
        "schema": 1,
        "per_event_cpu_us": per_event_cpu(figs),
        "targets": targets(figs, ratios, res, swap, upc),
        "swap": swap,
        "upstream_tls": {n: res[n]["upstream_tls"] for n in upstream_tls.SCENARIOS if n in res},
        "open_streams": open_res,
        "upstream_client": upc,
        "mode": meta.get("mode"),
        "only": meta.get("only") or None,
        "started_utc": meta.get("started_utc"),
        "machine": meta.get("machine"),
        "versions": meta.get("versions"),
        "bitrouter": meta.get("bitrouter"),
        "setup": {
            "server_cpu": meta.get("srv_cpu"),
            "load_cpu": meta.get("load_cpu"),
            "pinning": meta.get("pinning"),
            "durations_s": meta.get("durations"),
            "fixed_rate_rps": rate,
            "throughput_connections": 64,
            "big_body_connections": 256,
            "body_bytes": sizes,
        },
        "figures": figs,
        "ratios_vs_nginx": ratios,
        "raw": res,
        "notes": notes,
        "failures": failures,
        "ok": not failures,
    }
    md = render_md(out, meta)
    os.makedirs(outdir, exist_ok=True)
    suffix = "-quick" if meta.get("mode") == "quick" else ""
    stamp = meta.get("stamp") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for base in (f"latest{suffix}", f"{stamp}{suffix}"):
        with open(os.path.join(outdir, base + ".json"), "w") as f:
            json.dump(out, f, indent=2, sort_keys=False)
            f.write("\n")
        with open(os.path.join(outdir, base + ".md"), "w") as f:
            f.write(md)
    sys.stdout.write(md)
    print(f"\nwrote {outdir}/latest{suffix}.md, {outdir}/latest{suffix}.json and {stamp}{suffix}.*")
    if failures:
        print("\nFAILED: some scenarios returned non-2xx responses or errors:", file=sys.stderr)
        for n, errs in failures.items():
            for e in errs:
                print(f"  {n}: {e}", file=sys.stderr)
        return 3
    return 0


def ledger_dropped(lines):
    """Rows the ledger dropped during a scenario, from its log (`ledger: N row(s) dropped: ...;
    M dropped since start`; the same line may be collected more than once, so the largest
    since-start count is the answer)."""
    most = 0
    for line in lines:
        m = re.search(r"ledger: \d+ row\(s\) dropped: .*?(\d+) dropped since start", line)
        if m:
            most = max(most, int(m.group(1)))
    return most


def per_event_cpu(figs):
    """CPU per streamed event: (CPU per streaming request − CPU per JSON request) ÷ events. The
    two requests differ only in the body the proxy relays (one JSON answer vs 50 SSE events)."""
    out = {}
    for proxy, stream, plain in (("nginx", "nginx-stream", "nginx"), ("bitrouter", "bitrouter-stream", "bitrouter-pass")):
        a, b = g(figs, stream, "cpu_s_per_10k"), g(figs, plain, "cpu_s_per_10k")
        out[proxy] = None if a is None or b is None else (a - b) / 10000 * 1e6 / SSE_EVENTS
    return out


# The targets of issue 5, checked against this run's figures: (label, value, unit, limit, ok?).
def targets(figs, ratios, res, swap=None, upc=None):
    def f(n, k):
        return g(figs, n, k)

    def row(name, value, shown, limit, ok):
        return {"target": name, "value": value, "shown": shown, "limit": limit, "met": None if value is None else ok}

    T = []
    x = g(ratios, "bitrouter-pass", "rps_c64")
    T.append(row("pass-through throughput vs nginx", x, fmt_x(x).strip(" ()") if x else "–", "≥ 0.80×", x is not None and x >= 0.8))
    x = g(ratios, "bitrouter-pass", "cpu_s_per_10k")
    T.append(row("pass-through CPU per request vs nginx", x, fmt_x(x).strip(" ()") if x else "–", "≤ 1.25×", x is not None and x <= 1.25))
    x = g(ratios, "bitrouter-cross", "rps_c64")
    T.append(row("cross-protocol throughput vs nginx pass-through", x, fmt_x(x).strip(" ()") if x else "–", "≥ 0.50×", x is not None and x >= 0.5))
    x = f("bitrouter-pass", "added_p50_c1_us")
    T.append(row("added p50 over direct at 1 connection", x, fmt_us(x), "≤ 60 µs", x is not None and x <= 60))
    x = f("bitrouter-pass", "added_p99_c1_us")
    T.append(row("added p99 over direct at 1 connection", x, fmt_us(x), "≤ 150 µs", x is not None and x <= 150))
    x = f("bitrouter-pass", "p99_rate_us")
    T.append(row("p99 at the fixed sub-saturation rate", x, fmt_us(x), "≤ 1 ms", x is not None and x <= 1000))
    x = f("bitrouter-stream", "added_ttfb_p50_us")
    T.append(row("streaming TTFB over direct (p50)", x, fmt_us(x), "≤ 200 µs", x is not None and x <= 200))
    big = res.get("bitrouter-big")
    x = f("bitrouter-big", "peak_rss_kb")
    T.append(row("150 KiB body at 256 connections: works, peak RSS", x, fmt_mib(x) + " MiB" if x else "–", "all 2xx, ≤ 128 MB",
                 bool(big) and not big["failures"] and x is not None and x * 1024 <= 128e6))
    x = f("bitrouter-pass", "idle_rss_kb")
    T.append(row("idle RSS", x, fmt_mib(x) + " MiB" if x else "–", "≤ 20 MB", x is not None and x * 1024 <= 20e6))
    loads = [f(n, "peak_rss_kb") for n in ("bitrouter-pass", "bitrouter-cross", "bitrouter-stream")]
    loads.append(g(res, SOAK, "soak", "rss_max_kb"))
    loads = [v for v in loads if v is not None]
    x = max(loads) if loads else None
    T.append(row("RSS under sustained load (64 connections)", x, fmt_mib(x) + " MiB" if x else "–", "≤ 64 MB", x is not None and x * 1024 <= 64e6))
    soak = g(res, SOAK, "soak")
    x = g(soak, "peak_growth_kb")
    m = g(soak, "growth_kb")
    shown = "–" if x is None else (f"{x / 1024:+.1f} MiB over {soak['duration_s']:.0f} s"
                                   + ("" if m is None else f" (means: {m / 1024:+.1f} MiB)"))
    T.append(row("RSS growth during the soak (highest sample, last third vs first third)", x, shown,
                 "none (≤ 2 MiB)", x is not None and x <= 2048))
    # The same comparison in instructions per request (exact; throughput on a shared VM is not):
    # >= 0.8x the throughput is <= 1.25x the work per request on a saturated core.
    for on, off, what in (("bitrouter-guard", "bitrouter-pass", "pass-through"),
                          ("bitrouter-guard-stream", "bitrouter-stream", "SSE")):
        a, b = f(on, "instr_per_req"), f(off, "instr_per_req")
        x = a / b if a and b else None
        pass_through = what == "pass-through"
        T.append(row(f"{what} instructions per request, every built-in guardrail on vs off", x,
                     "–" if x is None else f"{fmt_n(a)} vs {fmt_n(b)} ({x:.2f}×)",
                     "≤ 1.25×" if pass_through else "reported",
                     (x is not None and x <= 1.25) if pass_through else None))
    # The ledger (usage read from every answer, a row queued per request; on by default) against
    # the same router without it: >= 0.9x the throughput is <= 1.11x the work per request.
    a, b = f("bitrouter-pass", "instr_per_req"), f("bitrouter-noledger", "instr_per_req")
    x = a / b if a and b else None
    T.append(row("pass-through instructions per request, ledger on (SQLite, the default) vs off", x,
                 "–" if x is None else f"{fmt_n(a)} vs {fmt_n(b)} ({x:.2f}×)", "≤ 1.11×",
                 x is not None and x <= 1 / 0.9))
    a, b = f("bitrouter-pass", "rps_c64"), f("bitrouter-noledger", "rps_c64")
    x = a / b if a and b else None
    T.append(row("pass-through throughput, ledger on vs off", x,
                 "–" if x is None else f"{x:.2f}×", "≥ 0.90×", x is not None and x >= 0.9))
    # Virtual keys (a brvk_ key whose policy has a budget: looked up, reserved, settled) against
    # the same pass-through with skip_auth: >= 0.9x the throughput is <= 1.11x the work.
    a, b = f("bitrouter-keys", "instr_per_req"), f("bitrouter-pass", "instr_per_req")
    x = a / b if a and b else None
    T.append(row("pass-through instructions per request, a virtual key with a budget vs skip_auth", x,
                 "–" if x is None else f"{fmt_n(a)} vs {fmt_n(b)} ({x:.2f}×)", "≤ 1.11×",
                 x is not None and x <= 1 / 0.9))
    a, b = f("bitrouter-keys", "rps_c64"), f("bitrouter-pass", "rps_c64")
    x = a / b if a and b else None
    T.append(row("pass-through throughput, a virtual key with a budget vs skip_auth", x,
                 "–" if x is None else f"{x:.2f}×", "≥ 0.90×", x is not None and x >= 0.9))
    # The target is the pass-through row; the SSE row is reported (no target): with
    # guardrails on, a same-protocol stream is decoded, scanned per part and re-encoded.
    for on, off, what, limit in (("bitrouter-guard", "bitrouter-pass", "pass-through", 0.8),
                                 ("bitrouter-guard-stream", "bitrouter-stream", "SSE", None)):
        a, b = f(on, "rps_c64"), f(off, "rps_c64")
        x = a / b if a and b else None
        T.append(row(f"{what} throughput with every built-in guardrail on vs off", x,
                     "–" if x is None else f"{x:.2f}×", "≥ 0.80×" if limit else "reported",
                     None if limit is None else (x is not None and x >= limit)))
    # Issue 19: each against nginx doing the same job in this run (reported; the issue sets no limit).
    for n, what in (("bitrouter-tls", "HTTPS termination (TLS 1.3, same certificate)"),
                    ("bitrouter-embed", "embeddings pass-through (`/v1/embeddings`)"),
                    ("bitrouter-route", "plain `routes:` pass-through (Pingora's proxy loop)")):
        for k, unit in (("rps_c64", "throughput"), ("cpu_s_per_10k", "CPU per request"), ("instr_per_req", "instructions per request")):
            x = g(ratios, n, k)
            T.append(row(f"{what}: {unit} vs nginx", x, "–" if x is None else f"{x:.2f}×", "reported", None))
    if swap:
        x = swap.get("failed_requests")
        T.append(row(f"failed requests across {swap['reloads']} reloads and {swap['restarts']} restarts", x,
                     "–" if x is None else str(x), "0", x == 0 and not swap["verb_failures"]))
        x = swap.get("p99_ratio")
        shown = "–" if x is None else f"{fmt_us(g(swap, 'swap', 'p99_us'))} vs {fmt_us(g(swap, 'steady', 'p99_us'))} steady ({x:.2f}×)"
        T.append(row("p99 during reloads and restarts vs steady (same rate)", x, shown, "reported", None))
    if upc:
        x = g(upstream_client.summary(upc, f("bitrouter-pass", "instr_per_req"), None), "json", "of_request")
        T.append(row("lean upstream client: instructions saved on a pass-through request (adopt at ≥ 15 %)", x,
                     "–" if x is None else f"{x * 100:.1f} %", "≥ 15 % to adopt", x is not None and x >= 0.15))
    return T


def render_md(out, meta):
    figs, ratios, res = out["figures"], out["ratios_vs_nginx"], out["raw"]
    m = out.get("machine") or {}
    v = out.get("versions") or {}
    b = out.get("bitrouter") or {}
    s = out["setup"]
    d = s.get("durations_s") or {}
    L = []
    L.append(f"# bitrouter vs nginx load benchmark ({out.get('mode')} run, {out.get('started_utc')})\n")
    if out.get("only"):
        L.append(f"**Partial run** (`--only {out['only']}`): only these scenarios ran; no soak, no reload/restart row.\n")
    L.append(
        f"- Machine: {m.get('cpu_model')}, {m.get('cores')} cores, kernel {m.get('kernel')}, {m.get('mem')}, {m.get('os')}"
    )
    L.append(
        f"- bitrouter: {'built by this run from' if b.get('built') else 'binary given with --bitrouter; the work tree is at'} commit `{b.get('commit')}`"
        f"{' with uncommitted changes' if b.get('dirty') else ''}, `{b.get('version')}`, binary `{b.get('path')}` (sha256 {str(b.get('sha256'))[:12]})"
    )
    L.append(f"- Tools: {v.get('nginx')}, {v.get('wrk')}, {v.get('oha')}, {v.get('curl')}")
    L.append(
        f"- Placement: {s.get('pinning')}. nginx `worker_processes 1`, bitrouter `threads: 1`; "
        "a fresh proxy process per scenario; upstream = one mock nginx worker returning fixed bodies "
        f"(OpenAI {s['body_bytes'].get('resp_openai')} B, Anthropic {s['body_bytes'].get('resp_anthropic')} B, "
        f"SSE {s['body_bytes'].get('resp_sse')} B in {SSE_EVENTS} events); request body {s['body_bytes'].get('chat.json')} B."
    )
    L.append(
        f"- Load: throughput = wrk, 1 thread, 64 connections, {d.get('throughput')} s (after {d.get('warmup')} s warm-up); "
        f"latency = oha, 1 connection, {d.get('latency')} s; fixed rate = oha `-q {s.get('fixed_rate_rps')}` ({meta.get('rate_desc')}), 64 connections, "
        f"latency correction, median p99 of {d.get('rate_reps')} runs of {d.get('rate')} s in a fresh process; streaming TTFB/TTLB = curl over one keep-alive connection, {d.get('stream_n')} requests; "
        f"CPU = utime+stime of the proxy process tree over the throughput run; ratios (×) are against nginx in this run."
    )
    L.append("")
    if out.get("targets"):
        L.append("## Against the targets (issue 5)\n")
        L.append("| target | this run | limit | met |")
        L.append("|---|---|---|---|")
        for t in out["targets"]:
            met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
            L.append(f"| {t['target']} | {t['shown']} | {t['limit']} | {met} |")
        L.append("")
    L.append("## Request/response (`POST /v1/chat/completions`, non-streaming)\n")
    L.append(
        f"| scenario | req/s @64 conn | p50 @1 conn | p99 @1 conn | added p50 vs direct | added p99 vs direct | p99 @ {s.get('fixed_rate_rps')} req/s | CPU s / 10k req | idle RSS MiB | peak RSS MiB |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for n in JSON_SCENARIOS + REFERENCE_SCENARIOS:
        if n not in figs:
            continue
        f, x = figs[n], ratios[n]
        L.append(
            f"| {label(n)} | {fmt_n(f['rps_c64'])}{fmt_x(x.get('rps_c64'))} | {fmt_us(f['p50_c1_us'])}{fmt_x(x.get('p50_c1_us'))} | "
            f"{fmt_us(f['p99_c1_us'])}{fmt_x(x.get('p99_c1_us'))} | {fmt_us(f.get('added_p50_c1_us'))}{fmt_x(x.get('added_p50_c1_us'))} | "
            f"{fmt_us(f.get('added_p99_c1_us'))}{fmt_x(x.get('added_p99_c1_us'))} | {fmt_us(f['p99_rate_us'])}{fmt_x(x.get('p99_rate_us'))} | "
            f"{fmt_n(f['cpu_s_per_10k'], 3)}{fmt_x(x.get('cpu_s_per_10k'))} | {fmt_mib(f['idle_rss_kb'])}{fmt_x(x.get('idle_rss_kb'))} | "
            f"{fmt_mib(f['peak_rss_kb'])}{fmt_x(x.get('peak_rss_kb'))} |"
        )
    L.append("")
    if any(n in figs for n in DC_SCENARIOS):
        L.append("## In the datacenter: HTTPS termination, embeddings, plain routes (issue 19)\n")
        L.append(
            "Each bitrouter row against nginx doing the same job in this run (× is against the nginx row above it): "
            "HTTPS = the chat pass-through over TLS 1.3 with the same self-signed ECDSA P-256 certificate on both "
            "(wrk and oha keep their connections, so this is the per-request cost of encryption, not of handshakes); "
            f"embeddings = `POST /v1/embeddings` answered with a {s['body_bytes'].get('resp_embed')} B vector (bitrouter routes it by "
            "`model` like chat); route = `POST /plain/...` through a `routes:` entry (Pingora's own proxy loop, no body read) "
            "vs nginx `proxy_pass`.\n"
        )
        L.append(f"| scenario | req/s @64 conn | p50 @1 conn | p99 @1 conn | p99 @ {s.get('fixed_rate_rps')} req/s | CPU s / 10k req | instructions / request | peak RSS MiB |")
        L.append("|---|---|---|---|---|---|---|---|")
        for n in DC_SCENARIOS:
            if n not in figs:
                continue
            f, x = figs[n], ratios[n]
            L.append(
                f"| {label(n)} | {fmt_n(f['rps_c64'])}{fmt_x(x.get('rps_c64'))} | {fmt_us(f['p50_c1_us'])}{fmt_x(x.get('p50_c1_us'))} | "
                f"{fmt_us(f['p99_c1_us'])}{fmt_x(x.get('p99_c1_us'))} | {fmt_us(f['p99_rate_us'])}{fmt_x(x.get('p99_rate_us'))} | "
                f"{fmt_n(f['cpu_s_per_10k'], 3)}{fmt_x(x.get('cpu_s_per_10k'))} | {fmt_n(f.get('instr_per_req'))}{fmt_x(x.get('instr_per_req'))} | "
                f"{fmt_mib(f['peak_rss_kb'])}{fmt_x(x.get('peak_rss_kb'))} |"
            )
        L.append("")
    L += upstream_tls.render(out, label, fmt_n, fmt_x)
    L += open_streams.render(out.get("open_streams") or {})
    L += upstream_client.render(out.get("upstream_client"), g(figs, "bitrouter-pass", "instr_per_req"),
                                g(figs, "bitrouter-stream", "instr_per_req"), fmt_n, fmt_x)
    L.append("")
    L.append("## Streaming (`stream: true`, 50-event SSE, OpenAI → OpenAI)\n")
    L.append(
        f"| scenario | req/s @64 conn | TTFB p50 | TTFB p99 | TTLB p50 | TTLB p99 | added TTFB p50 vs direct | p50 @1 conn (oha) | p99 @ {s.get('fixed_rate_rps')} req/s | CPU s / 10k req | idle RSS MiB | peak RSS MiB |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in STREAM_SCENARIOS:
        if n not in figs:
            continue
        f, x = figs[n], ratios[n]
        L.append(
            f"| {label(n)} | {fmt_n(f['rps_c64'])}{fmt_x(x.get('rps_c64'))} | {fmt_us(f['ttfb_p50_us'])}{fmt_x(x.get('ttfb_p50_us'))} | "
            f"{fmt_us(f['ttfb_p99_us'])}{fmt_x(x.get('ttfb_p99_us'))} | {fmt_us(f['ttlb_p50_us'])}{fmt_x(x.get('ttlb_p50_us'))} | "
            f"{fmt_us(f['ttlb_p99_us'])}{fmt_x(x.get('ttlb_p99_us'))} | {fmt_us(f.get('added_ttfb_p50_us'))}{fmt_x(x.get('added_ttfb_p50_us'))} | "
            f"{fmt_us(f['p50_c1_us'])}{fmt_x(x.get('p50_c1_us'))} | {fmt_us(f['p99_rate_us'])}{fmt_x(x.get('p99_rate_us'))} | "
            f"{fmt_n(f['cpu_s_per_10k'], 3)}{fmt_x(x.get('cpu_s_per_10k'))} | {fmt_mib(f['idle_rss_kb'])}{fmt_x(x.get('idle_rss_kb'))} | "
            f"{fmt_mib(f['peak_rss_kb'])}{fmt_x(x.get('peak_rss_kb'))} |"
        )
    L.append("")
    pe = out.get("per_event_cpu_us") or {}
    if any(v is not None for v in pe.values()):
        L.append(
            "CPU per streamed event (CPU per streaming request − CPU per JSON request, ÷ "
            f"{SSE_EVENTS} events): "
            + ", ".join(f"{k} {v:.2f} µs" for k, v in pe.items() if v is not None)
            + ".\n"
        )
    big = s["body_bytes"].get("big.json")
    L.append(f"## Large request body ({(big or 0) / 1024:.0f} KiB JSON, 256 connections, {d.get('big')} s)\n")
    L.append("| scenario | works | req/s | p99 | non-2xx | socket errors | CPU s / 10k req | idle RSS MiB | peak RSS MiB |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for n in BIG_SCENARIOS:
        if n not in figs:
            continue
        f, x, t = figs[n], ratios[n], res[n].get("throughput") or {}
        works = "yes" if not res[n]["failures"] else "NO"
        L.append(
            f"| {label(n)} | {works} | {fmt_n(f['rps_c64'])}{fmt_x(x.get('rps_c64'))} | {fmt_us(f['p99_c64_us'])}{fmt_x(x.get('p99_c64_us'))} | "
            f"{t.get('non2xx', '–')} | {t.get('socket_errors', '–')} | {fmt_n(f['cpu_s_per_10k'], 3)}{fmt_x(x.get('cpu_s_per_10k'))} | "
            f"{fmt_mib(f['idle_rss_kb'])} | {fmt_mib(f['peak_rss_kb'])}{fmt_x(x.get('peak_rss_kb'))} |"
        )
    L.append("")
    soak = g(res, SOAK, "soak")
    if soak:
        t = res[SOAK].get("throughput") or {}
        f = figs.get(SOAK) or {}
        L.append(f"## Soak (bitrouter, {soak['duration_s']:.0f} s at 64 connections, pass-through / cross-protocol / streaming in turn)\n")
        L.append("| req/s | non-2xx | socket errors | CPU s / 10k req | RSS at start MiB | highest RSS, first / last third | growth (highest) | "
                 "mean RSS, first / last third | growth (means) | max RSS MiB |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        peaks = soak.get("peak_growth_kb")
        L.append(
            f"| {fmt_n(t.get('rps'))} | {t.get('non2xx', '–')} | {t.get('socket_errors', '–')} | {fmt_n(f.get('cpu_s_per_10k'), 3)} | "
            f"{fmt_mib(soak['rss_start_kb'])} | {fmt_mib(soak.get('rss_first_third_max_kb'))} / {fmt_mib(soak.get('rss_last_third_max_kb'))} | "
            f"{'–' if peaks is None else f'{peaks / 1024:+.2f} MiB'} | "
            f"{fmt_mib(soak['rss_first_third_kb'])} / {fmt_mib(soak['rss_last_third_kb'])} | "
            f"{soak['growth_kb'] / 1024:+.2f} MiB | {fmt_mib(soak['rss_max_kb'])} |"
        )
        L.append("")
    swap = out.get("swap")
    if swap:
        L.append(f"## Reloads and restarts under load (bitrouter, fixed rate, 64 connections)\n")
        L.append("| run | reloads | restarts | requests ok | non-2xx | errors | p50 | p99 | p99.9 | max |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for name, key, rl, rs in (("steady", "steady", 0, 0), ("with reloads and restarts", "swap", swap["reloads"], swap["restarts"])):
            o = swap.get(key) or {}
            L.append(
                f"| {name} | {rl} | {rs} | {o.get('ok', '–')} | {o.get('non2xx', '–')} | {o.get('socket_errors', '–')} | "
                f"{fmt_us(o.get('p50_us'))} | {fmt_us(o.get('p99_us'))} | {fmt_us(o.get('p999_us'))} | {fmt_us(o.get('max_us'))} |"
            )
        L.append("")
        L.append("A restart (`bitrouter restart`) starts a new process that takes the listening socket over "
                 "(Pingora's graceful upgrade); the old one keeps serving for Pingora's 5 s hand-over, then "
                 "drains and exits. Both are pinned to the server core, so during a restart two processes share it.\n")
    L.append("## Where the time went (throughput run)\n")
    L.append(
        f"| scenario | proxy process CPU % | user µs / req | kernel µs / req | server core (cpu{s.get('server_cpu')}) busy % | irq+softirq on it (partly inside the proxy's time) | other processes on it | load+upstream core (cpu{s.get('load_cpu')}) busy % | upstream nginx CPU % | hypervisor steal % (server / load core) | machine busy just before (others) |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in JSON_SCENARIOS + REFERENCE_SCENARIOS + STREAM_SCENARIOS + BIG_SCENARIOS + DC_SCENARIOS + upstream_tls.SCENARIOS + [SOAK]:
        if n not in res:
            continue
        r = res[n]
        bg = r.get("background_busy_pct") or {}
        bgs = ", ".join(f"{c} {v:.0f}%" for c, v in bg.items() if v is not None) or "–"
        direct = n.startswith("direct")
        st = r.get("steal_pct") or {}
        steal = " / ".join(fmt_n(v, 1) for v in st.values()) or "–"
        pc = "(upstream itself)" if direct else fmt_n(r.get("proc_cpu_pct"))
        L.append(
            f"| {label(n)} | {pc} | {'–' if direct else fmt_n(r.get('user_us_per_req'), 1)} | {'–' if direct else fmt_n(r.get('sys_us_per_req'), 1)} | {'–' if direct else fmt_n(r.get('srv_core_busy_pct'))} | {'–' if direct else fmt_n(r.get('srv_core_irq_pct'))} | {'–' if direct else fmt_n(r.get('others_on_srv_core_pct'))} | {fmt_n(r.get('load_core_busy_pct'))} | "
            f"{fmt_n(r.get('upstream_cpu_pct'))} | {steal} | {bgs} |"
        )
    L.append("")
    ir_rows = [n for n in JSON_SCENARIOS + REFERENCE_SCENARIOS + STREAM_SCENARIOS + DC_SCENARIOS + upstream_tls.SCENARIOS
               if g(figs, n, "instr_per_req")]
    if ir_rows:
        L.append("## Instructions per request (callgrind)\n")
        L.append(
            "User-space instructions the proxy process executes per request, counted by valgrind's callgrind over "
            "a fixed number of requests (4 connections, after a warm-up; the counters are zeroed in between). Unlike CPU "
            "time this count is exact and repeats run after run whatever else the machine (or the hypervisor) does, so it "
            "is the figure to compare builds with; it leaves out the kernel's share (the socket work, about the same for "
            "every proxy: see the kernel column above) and says nothing about cache misses.\n"
        )
        L.append("| scenario | instructions / request | requests counted |")
        L.append("|---|---|---|")
        for n in ir_rows:
            L.append(
                f"| {label(n)}{' (SSE stream)' if n in STREAM_SCENARIOS + upstream_tls.STREAM else ''} | "
                f"{fmt_n(figs[n]['instr_per_req'])}{fmt_x(ratios[n].get('instr_per_req'))} | "
                f"{fmt_n(g(res, n, 'ir', 'requests'))} |"
            )
        L.append("")
    if out["notes"]:
        L.append("## Notes\n")
        for n in out["notes"]:
            L.append(f"- {n}")
        L.append("")
    if out["failures"]:
        L.append("## FAILURES\n")
        for n, errs in out["failures"].items():
            for e in errs:
                L.append(f"- **{n}**: {e}")
        L.append("")
    return "\n".join(L) + "\n"


LABELS = {
    "direct": "direct to upstream (floor)",
    "nginx": "nginx reverse proxy (baseline)",
    "bitrouter-pass": "bitrouter, OpenAI → OpenAI pass-through",
    "bitrouter-cross": "bitrouter, OpenAI → Anthropic `messages`",
    "direct-stream": "direct to upstream (floor)",
    "nginx-stream": "nginx reverse proxy (baseline)",
    "bitrouter-stream": "bitrouter, OpenAI → OpenAI SSE",
    "bitrouter-guard": "bitrouter pass-through, every built-in guardrail on (both directions)",
    "bitrouter-guard-stream": "bitrouter SSE, every built-in guardrail on (both directions)",
    "bitrouter-noledger": "bitrouter pass-through without the ledger (`database.enabled: false`)",
    "bitrouter-keys": "bitrouter pass-through with a virtual key whose policy has a budget",
    "pingora-static": "reference: Pingora, fixed answer from `request_filter` (no upstream)",
    "pingora-proxy": "reference: Pingora's stock proxy loop and pool",
    "nginx-big": "nginx reverse proxy",
    SOAK: "bitrouter soak (mixed)",
    "bitrouter-big": "bitrouter, OpenAI → OpenAI",
    "nginx-tls": "nginx, HTTPS (TLS 1.3) reverse proxy",
    "bitrouter-tls": "bitrouter, HTTPS (TLS 1.3) pass-through",
    "nginx-embed": "nginx, `/v1/embeddings` reverse proxy",
    "bitrouter-embed": "bitrouter, `/v1/embeddings` routed by model",
    "nginx-route": "nginx, `proxy_pass` of a plain service",
    "bitrouter-route": "bitrouter, a plain `routes:` entry",
}


LABELS.update(upstream_tls.LABELS)


def label(n):
    return LABELS.get(n, n)


# --------------------------------------------------------------------------------------------


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd = argv[1]
    if cmd == "cpus":
        cpus = sorted(os.sched_getaffinity(0))
        srv = cpus[0]
        load = cpus[1] if len(cpus) > 1 else cpus[0]
        print(srv, load, len(cpus))
    elif cmd == "ports":
        # Free ports below the ephemeral range, so no outgoing connection of the benchmark can
        # hold one while a proxy is restarted between scenarios.
        try:
            low = int(_read("/proc/sys/net/ipv4/ip_local_port_range").split()[0])
        except (OSError, ValueError, IndexError):
            low = 32768
        import random

        taken = {int(p) for p in argv[3:]}  # ports handed out by an earlier call, not yet bound
        cands = [p for p in range(max(1025, low - 12000), low) if p not in taken]
        random.shuffle(cands)
        got = []
        for port in cands:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
                got.append(port)
            except OSError:
                pass
            finally:
                s.close()
            if len(got) == int(argv[2]):
                break
        print(" ".join(map(str, got)))
    elif cmd == "gen":
        gen(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6]), int(argv[7]))
    elif cmd == "upstls-gen":
        oa = json.dumps(OPENAI_RESPONSE, separators=(",", ":"))
        upstream_tls.gen(argv[2], *(int(p) for p in argv[3:8]), nginx_str(oa), nginx_common, nginx_http_common,
                         mock_stream_and_404, nginx_upstream)
    elif cmd == "open-gen":
        open_streams.gen(argv[2], *(int(p) for p in argv[3:7]), nginx_common, nginx_http_common, nginx_upstream)
    elif cmd == "open-rows":
        print(open_streams.rows_for_run())
    elif cmd == "event-rows":
        print(open_streams.event_rows_for_run())
    elif cmd == "events-summary":
        r = open_streams.parse_events(argv[2])
        print(r.get("error") or f"{r['per_event']:,.0f} instructions/event, {r.get('per_stream') or 0:,.0f}/stream")
    elif cmd == "quiet":
        # Two snapshots 0.5 s apart from one process, so this script's own start-up is outside.
        pids = [int(argv[2])]
        a = snap(pids)
        time.sleep(0.5)
        b = snap(pids)
        for path, x in ((argv[3], a), (argv[4], b)):
            with open(path, "w") as f:
                json.dump(x, f)
    elif cmd == "stallwatch":
        stallwatch(argv[2])
    elif cmd == "snap":
        json.dump(snap([int(p) for p in argv[2:]]), sys.stdout)
        print()
    elif cmd == "check":
        try:
            check_body(argv[2], argv[3])
        except Exception as e:  # noqa: BLE001 - reported to the caller
            print(f"{type(e).__name__}: {e}", file=sys.stderr)
            return 1
    elif cmd == "oha-summary":
        o = parse_oha(argv[2]) or {}
        print(
            f"achieved {fmt_n(o.get('rps'))} req/s, p50 {fmt_us(o.get('p50_us'))}, p99 {fmt_us(o.get('p99_us'))}, "
            f"non-2xx {o.get('non2xx')}, errors {o.get('socket_errors')}"
        )
    elif cmd == "ir-summary":
        x = parse_ir(argv[2]) or {}
        print(
            f"{fmt_n(x.get('per_request'))} instructions/request over {x.get('requests')} requests, "
            f"non-2xx {x.get('non2xx')}, errors {x.get('socket_errors')}"
        )
    elif cmd == "autorate":
        cap = float(argv[3])
        rps = [g(parse_wrk(os.path.join(argv[2], n, "wrk.txt")), "rps") for n in argv[4:]]
        r = min([cap] + [x / 2 for x in rps if x])
        print(max(100, int(r // 100 * 100)))
    elif cmd == "report":
        return report(argv[2], argv[3])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""HTTPS upstreams, as every hosted provider is (issue 20, part 5): helper of bench.py (stdlib only).

The mock upstream nginx gets two more server blocks answering the same mock bodies over TLS 1.3 with
a certificate from a private test CA: one HTTP/1.1 only, one offering h2 by ALPN. nginx proxies to
the first (nginx speaks only HTTP/1.1 to an upstream: the reference row); bitrouter to each (its
upstream client offers ALPN h2,http/1.1 for an https `api_base`, and trusts the CA by `ca_file`).

Both TLS server blocks write an access log, one line per request:
`connection-serial session-reused protocol requests-on-connection tls-version status`.
`run` notes the log's size when a scenario's proxy starts and when it has stopped
(`RAW/<scenario>/upstls.range`, `upstls-rate.range`); the lines in between are that process's
upstream requests, and the distinct connection serials its upstream connections, each one TLS
handshake (full, or resumed from a session ticket: `r`).
"""

import os
import subprocess
from collections import Counter

# name -> the kind `run` starts (see its server_up), the upstream port it uses, the expected protocol.
SCENARIOS = ["nginx-upstls", "bitrouter-upstls", "bitrouter-uph2", "nginx-upstls-stream", "bitrouter-uph2-stream"]
STREAM = ["nginx-upstls-stream", "bitrouter-uph2-stream"]
COMPARATOR = {n: ("nginx-upstls-stream" if n in STREAM else "nginx-upstls") for n in SCENARIOS}
FLOOR = {n: ("direct-stream" if n in STREAM else "direct") for n in SCENARIOS}
# The same row with the plain-HTTP upstream, for the cost of TLS to the upstream.
PLAIN = {
    "nginx-upstls": "nginx",
    "bitrouter-upstls": "bitrouter-pass",
    "bitrouter-uph2": "bitrouter-pass",
    "nginx-upstls-stream": "nginx-stream",
    "bitrouter-uph2-stream": "bitrouter-stream",
}
EXPECTED_PROTOCOL = {
    "nginx-upstls": "HTTP/1.1",
    "bitrouter-upstls": "HTTP/1.1",
    "bitrouter-uph2": "HTTP/2.0",
    "nginx-upstls-stream": "HTTP/1.1",
    "bitrouter-uph2-stream": "HTTP/2.0",
}
LABELS = {
    "nginx-upstls": "nginx → HTTPS upstream (HTTP/1.1, pooled)",
    "bitrouter-upstls": "bitrouter pass-through → HTTPS upstream, HTTP/1.1 only",
    "bitrouter-uph2": "bitrouter pass-through → HTTPS upstream offering h2",
    "nginx-upstls-stream": "nginx → HTTPS upstream (HTTP/1.1), SSE",
    "bitrouter-uph2-stream": "bitrouter SSE → HTTPS upstream offering h2",
}
LOG = "upstream/logs/tls-access.log"


def nginx_version(nginx=None):
    """(major, minor, patch) of the nginx on PATH (or /usr/sbin/nginx); (0, 0, 0) if unknown."""
    import re

    for exe in ([nginx] if nginx else []) + ["nginx", "/usr/sbin/nginx"]:
        try:
            out = subprocess.run([exe, "-v"], capture_output=True, text=True).stderr
        except OSError:
            continue
        m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
        if m:
            return tuple(int(x) for x in m.groups())
    return (0, 0, 0)


def make_ca_and_cert(d):
    """A private CA and a certificate for 127.0.0.1 signed by it (ECDSA P-256). A self-signed
    certificate will not do as a trust root here: it is a CA certificate (`CA:TRUE`), which
    rustls (webpki) refuses as a server's end-entity certificate."""
    ca_key, ca = os.path.join(d, "upstls-ca-key.pem"), os.path.join(d, "upstls-ca.pem")
    key, csr, cert = (os.path.join(d, f"upstls-{x}.pem") for x in ("key", "csr", "cert"))
    ext = os.path.join(d, "upstls-ext.cnf")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for cmd in (
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "30",
         "-subj", "/CN=bitrouter bench upstream CA"],
        ["openssl", "req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "30", "-extfile", ext],
    ):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for x in (csr, ext, os.path.join(d, "upstls-ca.srl")):
        if os.path.exists(x):
            os.remove(x)
    return ca, cert, key


def gen(d, up, up_tls, up_h2, ngx, br, oa_quoted, nginx_common, nginx_http_common, mock_stream_and_404, nginx_upstream):
    """Writes upstream.d/tls.conf (included by upstream.conf's http block), proxy-upstls.conf
    (nginx proxying to the HTTP/1.1 TLS port), bitrouter-upstls.yaml and bitrouter-uph2.yaml."""
    d = os.path.abspath(d)
    ca, cert, key = make_ca_and_cert(d)
    os.makedirs(os.path.join(d, "upstream.d"), exist_ok=True)
    # nginx >= 1.25.1 turns h2 on per server (`http2 on`); older ones per listening socket.
    new_h2 = nginx_version() >= (1, 25, 1)
    h2_listen, h2_on = ("", "        http2 on;\n") if new_h2 else (" http2", "")
    servers = []
    for port, listen_extra, extra in ((up_tls, "", ""), (up_h2, h2_listen, h2_on)):
        servers.append(f"""    server {{
        listen 127.0.0.1:{port} ssl{listen_extra} backlog=8192;
{extra}        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_session_cache shared:UPTLS:10m;
        ssl_session_timeout 1h;
        access_log {d}/{LOG} upstls buffer=64k flush=100ms;
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 {oa_quoted};
        }}
{mock_stream_and_404(d)}    }}
""")
    with open(os.path.join(d, "upstream.d", "tls.conf"), "w") as f:
        f.write("    # HTTPS upstreams (upstream_tls.py): one line per request, for counting connections.\n")
        f.write("    log_format upstls '$connection $ssl_session_reused $server_protocol "
                "$connection_requests $ssl_protocol $status';\n")
        f.write("".join(servers))
    # nginx to the HTTP/1.1 TLS port: pooled, verified, sessions reused across connections. It is
    # verified as `localhost` (a DNS name of the certificate): nginx checks names with
    # X509_check_host, which does not match the IP address entry bitrouter (rustls) verifies.
    px_prefix = os.path.join(d, "proxy")
    tls_client = f"""            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_session_reuse on;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_name localhost;
"""
    with open(os.path.join(d, "proxy-upstls.conf"), "w") as f:
        f.write(nginx_common(px_prefix))
        f.write("http {\n" + nginx_http_common(px_prefix))
        f.write(nginx_upstream("llm_tls", up_tls) + f"""    server {{
        listen 127.0.0.1:{ngx} backlog=8192;
        location / {{
            proxy_pass https://llm_tls;
{tls_client}        }}
        location /stream/ {{
            proxy_pass https://llm_tls;
{tls_client}            proxy_buffering off;
        }}
    }}
}}
""")
    with open(os.path.join(d, "bitrouter.yaml")) as f:
        base = f.read()
    for name, port in (("bitrouter-upstls.yaml", up_tls), ("bitrouter-uph2.yaml", up_h2)):
        y = base
        for prov, path in (("mock-openai", "/v1"), ("mock-stream", "/stream/v1")):
            old = f"  {prov}:\n    api_base: http://127.0.0.1:{up}{path}\n"
            new = f"  {prov}:\n    api_base: https://127.0.0.1:{port}{path}\n    ca_file: {ca}\n"
            if old not in y:
                raise SystemExit(f"upstream_tls: provider {prov} not found in bitrouter.yaml")
            y = y.replace(old, new)
        with open(os.path.join(d, name), "w") as f:
            f.write(y)


def parse_range(tmp, rng):
    """The access-log lines between the two byte offsets in file `rng` (see the module doc), and
    the third figure of the file: the connections the proxy still had open to the upstream just
    before it was stopped (`ss`), i.e. its pool."""
    try:
        with open(rng) as f:
            fields = [int(x) for x in f.read().split()]
        a, b = fields[:2]
        with open(os.path.join(tmp, LOG), "rb") as f:
            f.seek(a)
            text = f.read(max(0, b - a)).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None, None
    return [l.split() for l in text.splitlines() if len(l.split()) >= 6], (fields[2] if len(fields) > 2 else None)


def count(lines, open_at_end=None):
    """Upstream connections (distinct serials), handshakes (one per connection, full or resumed:
    `r` on the connection's first request), requests, and the protocols the connections spoke.
    The upstream also logs the readiness probes `run` sends through a proxy (`GET /`, 404)."""
    if lines is None:
        return None
    first = {}
    reqs = Counter()
    for conn, reused, proto, _n, tls, status in (l[:6] for l in lines):
        first.setdefault(conn, (reused, proto, tls))
        reqs[conn] += 1
    protos = Counter(p for _r, p, _t in first.values())
    return {
        "requests": len(lines),
        "connections": len(first),
        "handshakes": len(first),
        "handshakes_resumed": sum(1 for r, _p, _t in first.values() if r == "r"),
        "handshakes_full": sum(1 for r, _p, _t in first.values() if r != "r"),
        "protocols": dict(protos),
        "tls_versions": dict(Counter(t for _r, _p, t in first.values())),
        "max_requests_per_connection": max(reqs.values(), default=0),
        "requests_per_connection": (len(lines) / len(first)) if first else None,
        "statuses": dict(Counter(l[5] for l in lines)),
        "open_at_end": open_at_end,
    }


def parse(raw, name):
    """Upstream connection counts of scenario `name`: its measurement process (`process`: the
    sanity request, warm-up, throughput and 1-connection runs, streams) and its fixed-rate process."""
    tmp = os.path.dirname(os.path.abspath(raw))
    d = os.path.join(raw, name)
    out = {"expected_protocol": EXPECTED_PROTOCOL.get(name)}
    for key, fname in (("process", "upstls.range"), ("rate_process", "upstls-rate.range")):
        p = os.path.join(d, fname)
        out[key] = count(*parse_range(tmp, p)) if os.path.exists(p) else None
    return out


def notes(res):
    """Warnings when a row did not speak the protocol it is meant to measure."""
    out = []
    for n in SCENARIOS:
        c = (res.get(n) or {}).get("upstream_tls")
        if not c or not c.get("process"):
            continue
        protos = c["process"]["protocols"]
        want = c["expected_protocol"]
        if set(protos) != {want}:
            out.append(f"WARNING: {n}: the upstream connections spoke {protos}, not only {want}: the row does not "
                       "measure what its name says.")
        elif want == "HTTP/2.0" and c["process"]["connections"] > 8:
            out.append(f"NOTE: {n}: h2 was negotiated, but the load (64 client connections) used "
                       f"{c['process']['connections']} upstream h2 connections: h2 did not multiplex the "
                       "concurrent requests onto a few connections.")
    return out


def render(out, label, fmt_n, fmt_x):
    """The "HTTPS upstreams" section of the Markdown report (a list of lines; empty without rows)."""
    figs, ratios, res = out["figures"], out["ratios_vs_nginx"], out["raw"]
    rows = [n for n in SCENARIOS if n in figs]
    if not rows:
        return []
    L = ["## HTTPS upstreams (issue 20)\n"]
    L.append(
        "Every hosted provider is HTTPS. The mock upstream serves the same answers over TLS 1.3 with a "
        "certificate from a private test CA (trusted by nginx with `proxy_ssl_trusted_certificate`, by bitrouter "
        "with the provider's `ca_file`), on one port HTTP/1.1 only and on another offering h2 by ALPN. nginx "
        "cannot speak h2 to an upstream: its row (HTTP/1.1, `keepalive 64`, `proxy_ssl_session_reuse on`) is the "
        "reference; × is against it (the SSE rows against nginx's SSE row); *vs plain* is the same row with the "
        "plain-HTTP upstream in this run. Upstream connections and handshakes are counted from the TLS upstream's "
        "access log (distinct `$connection` serials; resumed = `$ssl_session_reused`) over the row's whole proxy "
        "process: its first request, warm-up, throughput run at 64 connections, 1-connection run (and streams); "
        "requests / connection = the requests the upstream saw ÷ connections; open at the end = the proxy's "
        "established connections to the upstream just before it was stopped (`ss`): its pool.\n"
    )
    L.append("| scenario | req/s @64 conn | CPU s / 10k req | vs plain | instructions / request | vs plain | "
             "upstream connections | TLS handshakes (resumed) | requests / connection | open at the end | protocol |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in rows:
        f, x = figs[n], ratios[n]
        p = figs.get(PLAIN[n]) or {}
        c = g(res, n, "upstream_tls", "process") or {}

        def vs(k):
            a, b = f.get(k), p.get(k)
            return "–" if not a or not b else f"{a / b:.2f}×"

        protos = ", ".join(f"{k}" + (f" ×{v}" if len(c.get("protocols", {})) > 1 else "")
                           for k, v in (c.get("protocols") or {}).items()) or "–"
        rpc = c.get("requests_per_connection")
        L.append(
            f"| {label(n)} | {fmt_n(f.get('rps_c64'))}{fmt_x(x.get('rps_c64'))} | "
            f"{fmt_n(f.get('cpu_s_per_10k'), 3)}{fmt_x(x.get('cpu_s_per_10k'))} | {vs('cpu_s_per_10k')} | "
            f"{fmt_n(f.get('instr_per_req'))}{fmt_x(x.get('instr_per_req'))} | {vs('instr_per_req')} | "
            f"{fmt_n(c.get('connections'))} | {fmt_n(c.get('handshakes'))} ({fmt_n(c.get('handshakes_resumed'))}) | "
            f"{fmt_n(rpc)} | {fmt_n(c.get('open_at_end'))} | {protos} |"
        )
    L.append("")
    return L


def g(d, *path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d

"""Issue 20's upstream-client comparison: the upstream half of a pass-through request alone,
with the HTTP/1 client bitrouter uses today (Pingora's) and a lean hand-written one on Pingora's
own connection pool (proxy/examples/upclient.rs), against the benchmark's nginx upstream.

`measure` runs, for each client and each body (the 818-byte chat JSON and the 13 KB SSE file,
both Content-Length): instructions per request under callgrind (the difference between a run of
N1 and one of N2 sequential requests, so start-up cancels out), and requests per second at 32
concurrent requests on one core (median of alternating runs). `check` first fetches both URLs
with both clients and compares status, headers and body byte for byte.

The issue's rule: adopt the alternative only if it makes the pass-through row >= 15 % cheaper;
the saving per request is set against the pass-through row's own instructions per request
(bitrouter-pass and bitrouter-stream of the same run).
"""
import json
import os
import re
import subprocess
import sys

N1, N2 = 200, 2200
RPS_SECS = 3
RPS_REPS = 3
CONC = 32
BODIES = [("json", "/v1/chat/completions", "chat.json"), ("sse", "/stream/v1/chat/completions", "stream.json")]
CLIENTS = ["pingora", "lean"]
ADOPT_BAR = 0.15


def _ir(upclient, kind, url, body, n, cg_out, valgrind, pin):
    log = cg_out + ".log"
    with open(log, "w") as err:
        subprocess.run(pin + [valgrind, "--tool=callgrind", f"--callgrind-out-file={cg_out}",
                              upclient, kind, url, "--body", body, "--requests", str(n)],
                       stdout=subprocess.DEVNULL, stderr=err, check=True)
    m = re.search(r"Collected : (\d+)", open(log).read())
    if not m:
        raise RuntimeError(f"no callgrind total in {log}")
    return int(m.group(1))


def measure(upclient, base, tmp, out, valgrind, pin):
    res = {"n1": N1, "n2": N2, "concurrency": CONC, "rps_secs": RPS_SECS, "clients": {}}
    for bname, path, body in BODIES:
        url = base + path
        chk = subprocess.run([upclient, "check", url, "--body", os.path.join(tmp, body)],
                             capture_output=True, text=True)
        res.setdefault("check", {})[bname] = {"ok": chk.returncode == 0,
                                              "out": (chk.stdout + chk.stderr).strip()[-400:]}
        for c in CLIENTS:
            cg = os.path.join(os.path.dirname(out), f"cg.{c}.{bname}")
            a = _ir(upclient, c, url, os.path.join(tmp, body), N1, cg + f".{N1}", valgrind, pin)
            b = _ir(upclient, c, url, os.path.join(tmp, body), N2, cg + f".{N2}", valgrind, pin)
            res["clients"].setdefault(c, {})[bname] = {"instr_per_req": (b - a) / (N2 - N1)}
        runs = {c: [] for c in CLIENTS}
        for _ in range(RPS_REPS):
            for c in CLIENTS:
                p = subprocess.run(pin + [upclient, c, url, "--body", os.path.join(tmp, body),
                                          "--secs", str(RPS_SECS), "--concurrency", str(CONC)],
                                   capture_output=True, text=True)
                try:
                    runs[c].append(json.loads(p.stdout.strip().splitlines()[-1]))
                except (ValueError, IndexError):
                    runs[c].append({"rps": None, "errors": None, "err": p.stderr[-300:]})
        for c in CLIENTS:
            rps = sorted(r["rps"] for r in runs[c] if r.get("rps"))
            res["clients"][c][bname].update({
                "rps": rps[len(rps) // 2] if rps else None,
                "errors": sum(r.get("errors") or 0 for r in runs[c]),
                "runs": runs[c],
            })
    json.dump(res, open(out, "w"), indent=2)


def failed(res):
    """Names of what went wrong: a client answered differently, or a request failed."""
    bad = [f"upstream-client check ({b})" for b, v in (res.get("check") or {}).items() if not v.get("ok")]
    for c, per in (res.get("clients") or {}).items():
        for b, v in per.items():
            if v.get("errors"):
                bad.append(f"upstream-client {c} {b}: {v['errors']} errors")
    return bad


def summary(res, pass_ir, stream_ir):
    """The saving per request and its share of the full pass-through request, per body."""
    out = {}
    cl = res.get("clients") or {}
    for bname, full in (("json", pass_ir), ("sse", stream_ir)):
        p = (cl.get("pingora") or {}).get(bname, {}).get("instr_per_req")
        l = (cl.get("lean") or {}).get(bname, {}).get("instr_per_req")
        if p is None or l is None:
            continue
        saved = p - l
        out[bname] = {"saved": saved, "of_half": saved / p if p else None,
                      "of_request": saved / full if full else None}
    return out


def render(res, pass_ir, stream_ir, fmt_n, fmt_x):
    if not res:
        return []
    L = ["## The upstream half: Pingora's HTTP/1 client vs a lean one (issue 20)\n"]
    L.append(
        "The upstream call alone (`proxy/examples/upclient.rs`): a pooled connection, the request in one write, "
        "the response head and an 818-byte JSON or 13 KB SSE body (both Content-Length) read, the connection "
        "released. **pingora** is bitrouter's path today (Pingora's HTTP/1 session: `read_response` with its "
        "header-case map, a 64 KiB body buffer, `release_http_session`); **lean** parses the head with `httparse` "
        "into a 4 KiB buffer and builds the same `ResponseHeader`, on the same Pingora connection pool "
        f"(`TransportConnector`). Instructions per request: callgrind, ({res['n2']} − {res['n1']} requests) run "
        f"difference. req/s: {res['concurrency']} concurrent requests on one thread, median of "
        f"{RPS_REPS} × {res['rps_secs']} s.\n"
    )
    L.append("| body | client | instructions / request | req/s (upstream half alone) |")
    L.append("|---|---|---|---|")
    cl = res.get("clients") or {}
    for bname, _, _ in BODIES:
        base = (cl.get("pingora") or {}).get(bname, {})
        for c in CLIENTS:
            v = (cl.get(c) or {}).get(bname, {})
            ir, rps = v.get("instr_per_req"), v.get("rps")
            xi = (ir / base["instr_per_req"]) if c != "pingora" and ir and base.get("instr_per_req") else None
            xr = (rps / base["rps"]) if c != "pingora" and rps and base.get("rps") else None
            L.append(f"| {bname} | {c} | {fmt_n(ir)}{fmt_x(xi)} | {fmt_n(rps)}{fmt_x(xr)} |")
    L.append("")
    s = summary(res, pass_ir, stream_ir)
    for bname, full in (("json", pass_ir), ("sse", stream_ir)):
        v = s.get(bname)
        if not v:
            continue
        share = f"{v['of_request'] * 100:.1f} % of the whole request ({fmt_n(full)} instructions)" if v.get("of_request") else "the whole request's count was not measured in this run"
        L.append(f"- {bname}: the lean client saves {fmt_n(v['saved'])} instructions per request, "
                 f"{v['of_half'] * 100:.0f} % of the upstream half and {share}.")
    verdict = [b for b, v in s.items() if v.get("of_request") is not None and v["of_request"] >= ADOPT_BAR]
    if s:
        L.append(
            f"- The issue's rule (adopt only if >= {ADOPT_BAR * 100:.0f} % cheaper on the pass-through row): "
            + ("met for " + ", ".join(verdict) if verdict else "not met: the lean client is not adopted")
            + ".\n"
        )
    checks = res.get("check") or {}
    if checks:
        L.append("Same answer from both clients: " + ", ".join(
            f"{b} {'yes' if v.get('ok') else 'NO (' + v.get('out', '') + ')'}" for b, v in checks.items()) + ".\n")
    return L


if __name__ == "__main__":
    # measure UPCLIENT BASE_URL TMP OUT.json VALGRIND [PIN...]
    if len(sys.argv) >= 7 and sys.argv[1] == "measure":
        measure(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7:])
    else:
        sys.exit(__doc__)

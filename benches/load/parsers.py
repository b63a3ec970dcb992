"""Parsers of the load benchmark's raw outputs (wrk's WRKJSON line, oha's JSON, callgrind's
totals, curl's -w lines, the soak's RSS samples): helper of bench.py, stdlib only."""

import json
import os
import re
import statistics


def _read(path):
    with open(path) as f:
        return f.read()


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def parse_wrk(path):
    try:
        text = _read(path)
    except OSError:
        return None
    m = re.search(r"^WRKJSON (.*)$", text, re.M)
    if not m:
        return {"parse_error": text[-500:]}
    w = json.loads(m.group(1))
    w["rps"] = w["requests"] / (w["duration_us"] / 1e6) if w["duration_us"] else 0.0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    w["non2xx"] = int(m.group(1)) if m else 0
    w["socket_errors"] = sum(v for k, v in w["errors"].items() if k != "status")
    return w


def parse_oha(path):
    """oha --output-format json (or -j): latencies in seconds."""
    j = load_json(path)
    if j is None:
        return None
    s = j.get("summary", {})
    pct = j.get("latencyPercentiles", {})
    codes = j.get("statusCodeDistribution", {}) or {}
    errs = j.get("errorDistribution", {}) or {}
    ok = sum(int(v) for k, v in codes.items() if str(k).startswith("2"))
    bad = sum(int(v) for k, v in codes.items() if not str(k).startswith("2"))

    def us(x):
        return None if x is None else x * 1e6

    return {
        "rps": s.get("requestsPerSec"),
        "ok": ok,
        "non2xx": bad,
        "status_codes": codes,
        "errors": errs,
        # The requests still in flight when -z ends are reported as "aborted due to deadline".
        "socket_errors": sum(int(v) for k, v in errs.items() if "deadline" not in k),
        "p50_us": us(pct.get("p50")),
        "p90_us": us(pct.get("p90")),
        "p99_us": us(pct.get("p99")),
        "p999_us": us(pct.get("p99.9")),
        "max_us": us(s.get("slowest")),
        "mean_us": us(s.get("average")),
    }


def parse_ir(d):
    """Instructions per request from a callgrind run: the dump taken after the counters were
    zeroed (callgrind.out.1) over the requests oha_ir.json counted."""
    o = parse_oha(os.path.join(d, "oha_ir.json"))
    total = None
    try:
        for line in _read(os.path.join(d, "callgrind.out.1")).splitlines():
            if line.startswith("totals:"):
                total = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    if o is None and total is None:
        return None
    n = (o or {}).get("ok") or 0
    return {
        "requests": n,
        "non2xx": (o or {}).get("non2xx"),
        "socket_errors": (o or {}).get("socket_errors"),
        "instructions": total,
        "per_request": total / n if total is not None and n else None,
        "parse_error": None if (o is not None and total is not None) else "oha_ir.json or callgrind.out.1",
    }


def median_run(runs):
    """The run with the median p99 (its other figures kept with it); p99s of all runs listed."""
    good = [x for x in runs if x and x.get("p99_us") is not None]
    if not good:
        return None
    good.sort(key=lambda x: x["p99_us"])
    m = dict(good[(len(good) - 1) // 2])
    m["p99_us_runs"] = [x.get("p99_us") for x in runs]
    m["rps"] = statistics.mean(x["rps"] for x in good if x.get("rps") is not None)
    return m


def percentile(vals, p):
    if not vals:
        return None
    v = sorted(vals)
    k = max(0, min(len(v) - 1, int(round(p / 100 * len(v) + 0.5)) - 1))
    return v[k]


def parse_curl(path):
    """Lines `code ttfb_s total_s` written by curl -w."""
    try:
        lines = _read(path).split()
    except OSError:
        return None
    rows = [lines[i : i + 3] for i in range(0, len(lines) - 2, 3)]
    codes = [r[0] for r in rows]
    ttfb = [float(r[1]) * 1e6 for r in rows if r[0].startswith("2")]
    ttlb = [float(r[2]) * 1e6 for r in rows if r[0].startswith("2")]
    return {
        "n": len(rows),
        "non2xx": sum(1 for c in codes if not c.startswith("2")),
        "ttfb_p50_us": statistics.median(ttfb) if ttfb else None,
        "ttfb_p99_us": percentile(ttfb, 99),
        "ttlb_p50_us": statistics.median(ttlb) if ttlb else None,
        "ttlb_p99_us": percentile(ttlb, 99),
    }


def parse_soak(path):
    """Lines `unix_time rss_kb` sampled during the soak. Growth compares the last third of the run
    with the first third, after the first 10 % (warm-up: pools and allocator arenas fill): by
    their highest sample (`peak_growth_kb`, what the target is judged on) and by their mean
    (`growth_kb`). The peaks, because since the router stopped pinning pages with long-lived
    timers (2026-12-03) its RSS goes down between bursts of the mixed load (25-35 MiB in a
    300 s soak), and a third's mean then depends on where those dips fall: the full run of
    12:09 that day measured +4.6 MiB by means and +0.6 MiB by peaks; the two runs before it,
    whose RSS stayed at its plateau, -0.4 / +4.8 MiB by means and -0.6 / -0.4 MiB by peaks. A
    leak raises every peak."""
    try:
        rows = [tuple(map(float, l.split())) for l in _read(path).splitlines() if len(l.split()) == 2]
    except (OSError, ValueError):
        return None
    if len(rows) < 6:
        return None
    t0, t1 = rows[0][0], rows[-1][0]
    settled = [r for r in rows if r[0] - t0 >= 0.1 * (t1 - t0)]
    third = max(1, len(settled) // 3)
    first = statistics.mean(r[1] for r in settled[:third])
    last = statistics.mean(r[1] for r in settled[-third:])
    first_max = max(r[1] for r in settled[:third])
    last_max = max(r[1] for r in settled[-third:])
    return {
        "samples": len(rows),
        "duration_s": t1 - t0,
        "rss_start_kb": rows[0][1],
        "rss_first_third_kb": first,
        "rss_last_third_kb": last,
        "rss_max_kb": max(r[1] for r in rows),
        "growth_kb": last - first,
        "rss_first_third_max_kb": first_max,
        "rss_last_third_max_kb": last_max,
        "peak_growth_kb": last_max - first_max,
        "series": [[round(t - t0, 1), int(kb)] for t, kb in rows],
    }

#!/usr/bin/env python3
"""Renders otel_tracer.py's JSON as markdown tables: one per configuration."""
import json, sys

TID = "4bf92f3577b34da6a3ce929d0e0e4736"
SID = "00f067aa0ba902b7"
B3T = "463ac35c9f6413ad48485a3953bb6124"

def short(x, names):
    if x is None:
        return "—"
    # Longest first: the all-zero ids, then the upper-case spellings of T and S.
    for full, n in (("0" * 32, "0×32"), ("0" * 16, "0×16"), (TID, "T"), (TID.upper(), "T↑"),
                    (B3T, "B"), (SID, "S"), (SID.upper(), "S↑")):
        x = x.replace(full, n)
    for full, n in names.items():
        x = x.replace(full, n)
    return x

def main():
    data = json.load(open(sys.argv[1]))
    for cfg in data:
        print(f"\n#### {cfg['config']}\n")
        print("| incoming | status | upstream traceparent | upstream tracestate | upstream B3 | %TRACE_ID% | filter x-trace-id | collector span (trace/kind/parent) | x-request-id[14] upstream |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for i, r in enumerate(cfg["rows"]):
            names = {}
            def nm(t):
                if not t or t.lower() in (TID, B3T) or set(t) == {"0"}:
                    return
                if t not in names:
                    names[t] = f"N{len(names)+1}"
            up = r["upstream"] or {}
            for t in (up.get("traceparent") or []):
                p = t.split("-")
                if len(p) > 1: nm(p[1])
            for t in (up.get("x-b3-traceid") or []) + r["envoy_trace_id"] + r["filter_trace_id"]:
                nm(t)
            spans = [s for s in cfg["spans"] if s["attrs"].get("case") == f"c{i}"]
            for s in spans: nm(s["trace"])
            sp = "; ".join(f"{s['trace']}/{'SERVER' if s['kind']==2 else 'CLIENT' if s['kind']==3 else s['kind']}/{s['parent'] or '-'}" + (f" ts={s['tracestate']}" if s['tracestate'] else "") for s in spans) or "none"
            # span ids: name the upstream traceparent's parent id if it is a collector span
            if r["upstream"] is None:
                tpu = tsu = b3u = rid = "(not forwarded)"
            else:
                tpu = ", ".join(up["traceparent"]) or "—"
                tsu = " + ".join(up["tracestate"]) or "—"
                b3 = []
                if up["x-b3-traceid"]: b3.append("tid=" + ",".join(up["x-b3-traceid"]))
                if up["x-b3-spanid"]: b3.append("sid=" + ",".join(up["x-b3-spanid"]))
                if up["x-b3-sampled"]: b3.append("smp=" + ",".join(up["x-b3-sampled"]))
                if up["b3"]: b3.append("b3=" + ",".join(up["b3"]))
                b3u = " ".join(b3) or "—"
                rid = ",".join(x[14] if len(x) > 14 else "?" for x in up["x-request-id"]) or "—"
            for s in spans:
                if up.get("traceparent"):
                    p = up["traceparent"][0].split("-")
                    if len(p) > 2 and p[2] == s["span"]:
                        tpu = tpu.replace(s["span"], "«span»")
            sent = "; ".join(f"{k}: {v}" for k, v in r["sent"]) or "none"
            if r["path"] != "/":
                sent = f"{r['case']}" + (f" ({sent})" if r["sent"] else "")
            cells = [sent, str(r["status"]), tpu, tsu, b3u, ",".join(r["envoy_trace_id"]) or "—",
                     ",".join(r["filter_trace_id"]) or "—", sp, rid]
            print("| " + " | ".join(short(c, names).replace("|", "\\|") if c else "—" for c in cells) + " |")

main()

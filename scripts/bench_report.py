#!/usr/bin/env python3
"""Turns one bench run into Markdown: criterion's samples plus the lines scripts/bench.sh collected.

Usage: bench_report.py CRITERION_HOME RAW_LINES_FILE > latest.md

Every figure is a median over criterion's samples (each sample: total time / iterations), with
the fastest and slowest sample as min–max. Every target is a ratio of two medians of this run.
"""
import json
import os
import re
import statistics
import sys

crit_home, raw_file = sys.argv[1], sys.argv[2]

# ---- criterion results: (group, function, value) -> (median, min, max) in ns ----------------
results = {}
for root, _dirs, files in os.walk(crit_home):
    if os.path.basename(root) != "new" or "sample.json" not in files:
        continue
    with open(os.path.join(root, "benchmark.json")) as f:
        bench = json.load(f)
    with open(os.path.join(root, "sample.json")) as f:
        sample = json.load(f)
    per_iter = [t / i for t, i in zip(sample["times"], sample["iters"]) if i]
    if not per_iter:
        continue
    key = (bench["group_id"], bench["function_id"] or "", bench.get("value_str") or "")
    results[key] = (statistics.median(per_iter), min(per_iter), max(per_iter))

memory, machine, ceiling = {}, {}, {}
with open(raw_file) as f:
    for line in f:
        parts = line.strip().split(" ", 2)
        if parts[0] == "MEMORY" and len(parts) == 3:
            memory[parts[1]] = int(parts[2])
        elif parts[0] == "MACHINE" and len(parts) == 3:
            machine[parts[1]] = parts[2]
        elif parts[0] == "REDISBENCH":
            _, kind, rest = parts
            conc, text = rest.split(" ", 1)
            m = re.search(r"([0-9.]+) requests per second", text)
            if m:
                ceiling[(kind, conc)] = 1e9 / float(m.group(1))


def fmt(ns):
    if ns is None:
        return "–"
    if ns < 1_000:
        return f"{ns:.0f} ns" if ns >= 100 else f"{ns:.1f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def cell(key):
    r = results.get(key)
    if r is None:
        return "–"
    med, lo, hi = r
    return f"{fmt(med)} ({fmt(lo)}–{fmt(hi)})"


def med(group, func, value):
    r = results.get((group, func, str(value)))
    return r[0] if r else None


def groups(prefix):
    return sorted({g for (g, _, _) in results if g.startswith(prefix)})


def functions(group):
    order = []
    for (g, fn, _) in sorted(results):
        if g == group and fn not in order:
            order.append(fn)
    return order


def table(group, values, extra_rows=()):
    out = [f"| {group} | " + " | ".join(str(v) for v in values) + " |",
           "|---|" + "---|" * len(values)]
    for fn in functions(group):
        out.append(f"| `{fn}` | " + " | ".join(cell((group, fn, str(v))) for v in values) + " |")
    for name, cells in extra_rows:
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


# ---- targets ------------------------------------------------------------------------------------
targets = []  # (target, measured, goal, met)


def ratio_row(name, num, den, goal, le=True, unit="×"):
    if num is None or den is None:
        targets.append((name, "not measured", goal, "–"))
        return
    r = num / den
    ok = r <= goal if le else r >= goal
    sign = "≤" if le else "≥"
    targets.append((name, f"{r:.2f}{unit} ({fmt(num)} / {fmt(den)})", f"{sign} {goal:g}{unit}",
                    "yes" if ok else "**no**"))


for g in groups("acquire/"):
    if g.startswith("acquire_blocking"):
        continue
    for t in (1, 64):
        ratio_row(f"`get`+drop vs raw handle clone, {g.split('/', 1)[1]}, {t} task(s)",
                  med(g, "keeper_get", t), med(g, "raw_clone", t), 2)

real = "acquire/real/tokio"
for t in (1, 64):
    ratio_row(f"exclusive checkout+return vs deadpool (check off), {t} task(s)",
              med(real, "keeper_exclusive", t), med(real, "deadpool_nocheck", t), 1 / 3)
for g in ("acquire/sim/tokio", "acquire/real/tokio"):
    v = med(g, "keeper_exclusive", 1)
    targets.append((f"exclusive checkout+return, absolute, {g.split('/', 1)[1]}, 1 task",
                    fmt(v) if v else "not measured", "≤ 100 ns",
                    "–" if v is None else ("yes" if v <= 100 else "**no**")))
anchors64 = [med(real, a, 64) for a in ("deadpool", "deadpool_nocheck", "bb8", "bb8_nocheck")]
anchors64 = [a for a in anchors64 if a is not None]
best64 = min(anchors64) if anchors64 else None
ratio_row("exclusive, 64 tasks, vs the best anchor at 64", med(real, "keeper_exclusive", 64),
          best64, 0.5)
ratio_row("`get`, 64 tasks, vs the best anchor at 64", med(real, "keeper_get", 64), best64, 0.5)

for t in (1, 64):
    for tgt in ("real", "sim"):
        g = f"roundtrip/get/{tgt}"
        raw_v, keep_v = med(g, "raw_multiplexed", t), med(g, "keeper", t)
        if raw_v and keep_v:
            ratio_row(f"GET throughput through a Keeper vs raw MultiplexedConnection, {tgt}, "
                      f"{t} task(s)", raw_v, keep_v, 0.97, le=False)
            as_raw = med(g, "keeper_as_raw", t)
            if as_raw:
                ratio_row(f"the same, Keeper with the raw anchor's connection settings "
                          f"(`keeper_as_raw`), {tgt}, {t} task(s)", raw_v, as_raw, 0.97,
                          le=False)
        elif tgt == "real":
            targets.append((f"GET throughput vs raw MultiplexedConnection, real, {t}",
                            "not measured", "≥ 0.97×", "–"))
bg = "roundtrip/blocking_get/real"
if med(bg, "keeper_blocking", "") is not None:
    ratio_row("blocking GET (shared) vs raw redis::Connection", med(bg, "raw_connection", ""),
              med(bg, "keeper_blocking", ""), 0.97, le=False)
    ratio_row("blocking GET (exclusive) vs raw redis::Connection",
              med(bg, "raw_connection", ""), med(bg, "keeper_blocking_exclusive", ""), 0.97,
              le=False)
else:
    targets.append(("blocking GET vs raw redis::Connection", "follow-up: blocking API not on main",
                    "≥ 0.97×", "–"))
for t in (1, 64):
    ratio_row(f"GET over TLS through a Keeper vs redis-rs's rediss:// MultiplexedConnection, "
              f"{t} task(s) (throughput)", med("tls/get", "raw_rediss", t),
              med("tls/get", "keeper", t), 0.97, le=False)
for t in (1, 64):
    ratio_row(f"GET through a cluster database vs redis-rs's raw ClusterConnection, {t} task(s) "
              f"(throughput)", med("cluster/get", "raw_cluster", t),
              med("cluster/get", "keeper", t), 0.97, le=False)
tc = "tls/connect"
for tls_fn, plain_fn, who in (("keeper_transport_tls", "keeper_transport_plain", "Keeper"),
                              ("raw_rediss", "raw_redis", "redis-rs")):
    tls_v, plain_v = med(tc, tls_fn, ""), med(tc, plain_fn, "")
    if tls_v and plain_v:
        targets.append((f"TLS handshake cost per new connection, {who} (connect + PING, TLS "
                        f"minus plaintext)", fmt(tls_v - plain_v), "measured", "–"))
ratio_row("new TLS connection, Keeper's TlsTransport vs redis-rs rediss://",
          med(tc, "keeper_transport_tls", ""), med(tc, "raw_rediss", ""), 1.03)
if "pooled_overhead" in memory:
    v = memory["pooled_overhead"]
    targets.append(("heap per idle pooled connection beyond redis-rs's own", f"{v} B",
                    "≤ 2048 B", "yes" if v <= 2048 else "**no**"))
sc = "scaling/sim/tokio"
for fn in ("keeper_get", "keeper_exclusive"):
    ratio_row(f"`{fn}` with 64 databases vs 16", med(sc, fn, "dbs=64"), med(sc, fn, "dbs=16"), 1.1)
ratio_row("`keeper_exclusive` with 1 000 idle vs a few", med(sc, "keeper_exclusive", "idle=1000"),
          med(sc, "keeper_exclusive", "dbs=16"), 1.1)
ratio_row("`keeper_exclusive` with 1 000 idle, sweep every 10 ms, vs a few",
          med(sc, "keeper_exclusive", "idle=1000,sweep=10ms"),
          med(sc, "keeper_exclusive", "dbs=16"), 1.1)

# ---- output -------------------------------------------------------------------------------------
print("# Benchmark results\n")
print("Written by `scripts/bench.sh`. Medians over criterion's samples, (fastest–slowest sample) "
      "in brackets; times are wall time per operation (total over all tasks / operations). "
      "Every ratio compares two medians of this one run.\n")
if machine:
    print("| machine | |\n|---|---|")
    for k in ("cpu", "cores", "memory", "kernel", "rustc", "redis", "commit", "date", "mode"):
        if k in machine:
            print(f"| {k} | {machine[k]} |")
    print()

print("## Targets\n")
print("| target | measured | goal | met |\n|---|---|---|---|")
for name, measured, goal, met in targets:
    print(f"| {name} | {measured} | {goal} | {met} |")
print()

print("## Acquisition: checkout + return, no command\n")
print("Tokio: multi-thread runtime with 2 workers; smol: an executor run by 2 threads. "
      "Pool size 16. Columns: concurrent tasks.\n")
for g in groups("acquire/"):
    if g.startswith("acquire_blocking"):
        continue
    print(table(g, [1, 2, 16, 64]) + "\n")
for g in groups("acquire_blocking/"):
    print("Blocking: OS threads.\n")
    print(table(g, [1, 2, 16, 64]) + "\n")

print("## Scaling (simulator transport, tokio, 1 task)\n")
for g in groups("scaling/"):
    values = ["dbs=16", "dbs=64", "idle=1000", "idle=1000,sweep=10ms"]
    print(table(g, values) + "\n")
print("`dbs=16`: the 16 canonical databases (always configured); `dbs=64`: plus 48 aliases. "
      "`idle=1000`: 1 000 idle connections in the pool; `sweep=10ms`: the idle sweep runs every "
      "10 ms while checkouts go on.\n")

print("## Round trip: GET of a small key\n")
for g in groups("roundtrip/get/"):
    extra = []
    if g.endswith("/real") and ceiling:
        extra.append(("redis-benchmark (ceiling)",
                      [fmt(ceiling.get(("get", str(c)))) for c in (1, 16, 64)]))
    print(table(g, [1, 16, 64], extra) + "\n")
print("`keeper`: each task takes a shared handle once; `keeper_as_raw`: the same with one shared "
      "connection and TCP_NODELAY off, as the raw anchor has; `keeper_get_each`: a fresh `get` "
      "per GET; deadpool/bb8: a checkout per GET (pool size 16).\n")
for g in groups("roundtrip/pipeline16/"):
    extra = []
    if g.endswith("/real") and ("pipeline16", "1") in ceiling:
        extra.append(("redis-benchmark -P 16 (per pipeline)",
                      [fmt(ceiling[("pipeline16", "1")] * 16)]))
    print(table(g, [""], extra).replace("|  |", "| 1 task |", 1) + "\n")
for g in groups("roundtrip/blocking_get/"):
    print(table(g, [""]).replace("|  |", "| 1 thread |", 1) + "\n")

if groups("tls/"):
    print("## TLS (real server, TLS port; tokio, 2 workers)\n")
    for g in groups("tls/get"):
        print(table(g, [1, 64]) + "\n")
    for g in groups("tls/connect"):
        print(table(g, [""]).replace("|  |", "| one connection + PING |", 1) + "\n")
    print("`keeper`: the default config plus `ssl` and `ssl_ca_certs`, a shared handle per task; "
          "`raw_rediss`: clones of one redis-rs `rediss://` MultiplexedConnection. Connect rows: "
          "the Keeper's `TlsTransport` over its tokio transport, and redis-rs's own client, each "
          "with its plaintext twin on the same server.\n")

if groups("cluster/"):
    print("## Redis Cluster (three masters on loopback; tokio, 2 workers)\n")
    for g in groups("cluster/get"):
        print(table(g, [1, 64]) + "\n")
    print("`keeper`: the default config plus `cluster.nodes`, a handle per task; `raw_cluster`: "
          "clones of one redis-rs `cluster_async::ClusterConnection` with redis-rs's defaults.\n")

if memory:
    print("## Memory (heap bytes, counting allocator)\n")
    print("| what | bytes |\n|---|---|")
    for k, v in memory.items():
        print(f"| {k} | {v} |")
    print()

#!/usr/bin/env bash
# Worker → engine → worker round trips with the official Node iii-sdk clients, and memory per
# idle worker connection. Not part of CI. See bench/README.md.
#
#   bench/roundtrip.sh                    # our release engine
#   III_BIN=/path/to/iii bench/roundtrip.sh   # ... and the reference iii engine, side by side
#
# Knobs (env): SEQ=5000 calls at 1 in flight, PAR=50000 calls at 64 in flight,
# IDLE=1000 idle connections, TIMEOUT_MS=2000 per call (a call past it counts as lost),
# ROUNDS=3 alternating runs per engine (medians are printed; lost calls are summed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SEQ=${SEQ:-5000}
PAR=${PAR:-50000}
IDLE=${IDLE:-1000}
ROUNDS=${ROUNDS:-3}
TIMEOUT_MS=${TIMEOUT_MS:-2000}

log() { printf 'bench: %s\n' "$*" >&2; }

scripts/setup >&2
log "building the release engine"
cargo build --release --bin iii-engine >&2

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Polls `cmd` every 50 ms for at most `secs` seconds.
wait_for() {
  local secs=$1; shift
  local tries=$((secs * 20))
  until "$@"; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep 0.05
  done
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# User + system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts our engine on ephemeral ports; sets ENGINE_PID and ENGINE_URL.
start_ours() {
  local dir=$work/ours
  mkdir -p "$dir"
  cat >"$dir/config.yaml" <<'YAML'
workers:
  - name: iii-worker-manager
    config: { host: 127.0.0.1, port: 0 }
  - name: iii-http
    config: { host: 127.0.0.1, port: 0 }
YAML
  (cd "$dir" && RUST_LOG=warn exec "$root/target/release/iii-engine" --config config.yaml \
    --ready-file ready.json >engine.log 2>&1) &
  ENGINE_PID=$!
  pids+=("$ENGINE_PID")
  wait_for 30 test -s "$dir/ready.json" || { log "our engine did not get ready"; cat "$dir/engine.log" >&2; exit 1; }
  ENGINE_URL="ws://$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addrs"]["worker"])' "$dir/ready.json")"
}

# Starts the reference engine ($III_BIN) on free ports; sets ENGINE_PID and ENGINE_URL.
start_reference() {
  local dir=$work/reference port http
  mkdir -p "$dir"
  port=$(free_port)
  http=$(free_port)
  cat >"$dir/config.yaml" <<YAML
workers:
  - name: iii-worker-manager
    config: { host: 127.0.0.1, port: $port }
  - name: iii-http
    config: { host: 127.0.0.1, port: $http }
YAML
  # Telemetry off: the reference engine would otherwise try to report usage.
  (cd "$dir" && III_TELEMETRY_ENABLED=false RUST_LOG=warn exec "$III_BIN" --config config.yaml >engine.log 2>&1) &
  ENGINE_PID=$!
  pids+=("$ENGINE_PID")
  wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null \
    || { log "reference engine did not listen on $port"; cat "$dir/engine.log" >&2; exit 1; }
  ENGINE_URL="ws://127.0.0.1:$port"
}

# Measures the engine at ENGINE_PID/ENGINE_URL; writes JSON to $1.
measure() {
  local out=$1 fifo=$work/idle.fifo idle_out=$work/idle.out before after idle_pid
  # Idle connections first, on a fresh process.
  before=$(rss_kib "$ENGINE_PID")
  rm -f "$fifo" "$idle_out"
  mkfifo "$fifo"
  node bench/idle.mjs "$ENGINE_URL" "$IDLE" <"$fifo" >"$idle_out" 2>"$work/idle.err" &
  idle_pid=$!
  pids+=("$idle_pid")
  exec 3>"$fifo"
  wait_for 90 grep -q '"ready"' "$idle_out" || { log "idle connections did not open"; cat "$work/idle.err" >&2; exit 1; }
  sleep 1 # let the engine finish its per-connection setup before reading RSS
  after=$(rss_kib "$ENGINE_PID")
  exec 3>&-
  wait "$idle_pid" 2>/dev/null || true

  log "round trips against $ENGINE_URL (owner and caller in separate Node processes)"
  local owner_fifo=$work/owner.fifo owner_pid
  rm -f "$owner_fifo"
  mkfifo "$owner_fifo"
  node bench/roundtrip.mjs --owner "$ENGINE_URL" <"$owner_fifo" >/dev/null 2>"$work/owner.err" &
  owner_pid=$!
  pids+=("$owner_pid")
  exec 4>"$owner_fifo"
  local cpu_before cpu_after
  cpu_before=$(cpu_ticks "$ENGINE_PID")
  node bench/roundtrip.mjs "$ENGINE_URL" "$SEQ" "$PAR" "$TIMEOUT_MS" >"$work/rt.json" 2>"$work/rt.err" \
    || { cat "$work/rt.err" "$work/owner.err" >&2; exit 1; }
  cpu_after=$(cpu_ticks "$ENGINE_PID")
  exec 4>&-
  wait "$owner_pid" 2>/dev/null || true
  python3 - "$work/rt.json" "$before" "$after" "$IDLE" "$cpu_before" "$cpu_after" "$(getconf CLK_TCK)" >"$out" <<'PY'
import json, sys
rt = json.load(open(sys.argv[1]))
before, after, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cpu_s = (int(sys.argv[6]) - int(sys.argv[5])) / int(sys.argv[7])
rt["idle"] = {"connections": n, "rss_before_kib": before, "rss_after_kib": after,
              "kib_per_connection": (after - before) / n}
# Engine CPU over every call of the run (warm-up, sequential and parallel phases).
calls = 2000 + rt["seq"]["count"] + rt["par"]["count"]
rt["engine_cpu_us_per_call"] = cpu_s * 1e6 / calls
print(json.dumps(rt))
PY
  kill "$ENGINE_PID" 2>/dev/null || true
  wait "$ENGINE_PID" 2>/dev/null || true
}

for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS: our engine"
  start_ours
  measure "$work/ours.$round.json"
  if [ -n "${III_BIN:-}" ]; then
    log "round $round/$ROUNDS: reference engine ($III_BIN)"
    start_reference
    measure "$work/reference.$round.json"
  fi
done

python3 - "$work" "$ROUNDS" "${III_BIN:+yes}" <<'PY'
import json, statistics, sys
work, rounds, with_ref = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "yes"
def load(name):
    return [json.load(open(f"{work}/{name}.{r}.json")) for r in range(1, rounds + 1)]
ours = load("ours")
ref = load("reference") if with_ref else None
lost = lambda p: p["lost"] + p["failed"] + p["wrong"]
rows = [
    ("calls/s, 1 in flight", lambda r: r["seq"]["calls_per_s"], "{:,.0f}", "median"),
    ("p50 ms, 1 in flight", lambda r: r["seq"]["p50_ms"], "{:.3f}", "median"),
    ("p99 ms, 1 in flight", lambda r: r["seq"]["p99_ms"], "{:.3f}", "median"),
    ("lost+failed, 1 in flight", lambda r: lost(r["seq"]), "{:d}", "sum"),
    ("calls/s, 64 in flight", lambda r: r["par"]["calls_per_s"], "{:,.0f}", "median"),
    ("p50 ms, 64 in flight", lambda r: r["par"]["p50_ms"], "{:.3f}", "median"),
    ("p99 ms, 64 in flight", lambda r: r["par"]["p99_ms"], "{:.3f}", "median"),
    ("lost+failed, 64 in flight", lambda r: lost(r["par"]), "{:d}", "sum"),
    ("engine CPU us per call", lambda r: r["engine_cpu_us_per_call"], "{:.1f}", "median"),
    ("KiB per idle connection", lambda r: r["idle"]["kib_per_connection"], "{:.1f}", "median"),
]
def agg(runs, get, how):
    vals = [get(r) for r in runs]
    return sum(vals) if how == "sum" else statistics.median(vals)
head = ["metric", "ours"] + (["reference", "ours/ref"] if ref else [])
lines = [head]
for name, get, fmt, how in rows:
    a = agg(ours, get, how)
    line = [name, fmt.format(a)]
    if ref:
        b = agg(ref, get, how)
        line += [fmt.format(b), f"{a / b:.2f}x" if b else "-"]
    lines.append(line)
widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
for i, l in enumerate(lines):
    print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(l, widths))))
    if i == 0:
        print("  ".join("-" * w for w in widths))
print()
print(f"rounds: {rounds} per engine, alternating (medians; lost calls summed); calls per round: "
      f"{ours[0]['seq']['count']} at 1 in flight, {ours[0]['par']['count']} at 64 in flight; "
      f"idle connections: {ours[0]['idle']['connections']}")
PY

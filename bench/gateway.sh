#!/usr/bin/env bash
# The gateway's RBAC listener under load, side by side with a direct connection, and its memory
# per idle authenticated session. Not part of CI. See bench/README.md.
#
#   bench/gateway.sh
#
# Round trips: the callee (Node iii-sdk) connects to the engine directly; the caller connects
# directly, through the gateway over TLS (per-frame RBAC, no middleware), or through nginx over
# TLS as a plain WebSocket proxy (no RBAC at all), in turn, 64 calls in flight. Idle sessions: IDLE_COUNTS raw WebSocket sessions through a fresh gateway,
# plain and TLS; gateway VmRSS before and after.
#
# Knobs (env): SEQ=2000, PAR=50000, ROUNDS=3, TIMEOUT_MS=2000, IDLE_COUNTS="1000 8000".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SEQ=${SEQ:-2000}
PAR=${PAR:-50000}
ROUNDS=${ROUNDS:-3}
TIMEOUT_MS=${TIMEOUT_MS:-2000}
IDLE_COUNTS=${IDLE_COUNTS:-"1000 8000"}

log() { printf 'bench: %s\n' "$*" >&2; }

# Each session holds two sockets in the gateway; the hard limit here is 20,000.
ulimit -n "$(ulimit -Hn)"

scripts/setup >&2
log "building the release engine and gateway"
cargo build --release --bin iii-engine --bin iii-gateway >&2

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

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
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ready_addr() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addrs"][sys.argv[2]])' "$1" "$2"; }

# A test certificate for localhost (the clients trust it through NODE_EXTRA_CA_CERTS).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
export NODE_EXTRA_CA_CERTS=$work/cert.pem

start_engine() {
  mkdir -p "$work/engine"
  cat >"$work/engine/config.yaml" <<'YAML'
workers:
  - name: iii-worker-manager
    config: { host: 127.0.0.1, port: 0 }
YAML
  (cd "$work/engine" && RUST_LOG=warn exec "$root/target/release/iii-engine" --config config.yaml \
    --ready-file ready.json >engine.log 2>&1) &
  ENGINE_PID=$!
  pids+=("$ENGINE_PID")
  wait_for 30 test -s "$work/engine/ready.json" || { cat "$work/engine/engine.log" >&2; exit 1; }
  ENGINE_URL="ws://$(ready_addr "$work/engine/ready.json" worker)"
}

# Starts a gateway with one plain and one TLS listener; sets GATEWAY_PID, PLAIN_URL, TLS_URL.
start_gateway() {
  local dir=$work/gateway
  rm -rf "$dir"; mkdir -p "$dir"
  cat >"$dir/gateway.yaml" <<YAML
engine: { url: $ENGINE_URL }
tls:
  certificates: [{ cert_file: $work/cert.pem, key_file: $work/key.pem }]
listeners:
  - name: plain
    port: 0
    rbac: { expose_functions: [ 'match("bench::*")' ] }
  - name: tls
    port: 0
    tls: true
    rbac: { expose_functions: [ 'match("bench::*")' ] }
YAML
  (cd "$dir" && RUST_LOG=warn exec "$root/target/release/iii-gateway" run --config gateway.yaml \
    --ready-file ready.json >gateway.log 2>&1) &
  GATEWAY_PID=$!
  pids+=("$GATEWAY_PID")
  wait_for 30 test -s "$dir/ready.json" || { cat "$dir/gateway.log" >&2; exit 1; }
  PLAIN_URL="ws://$(ready_addr "$dir/ready.json" listener:plain)"
  TLS_URL="wss://localhost:$(ready_addr "$dir/ready.json" listener:tls | sed 's/.*://')"
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# nginx over TLS as a plain WebSocket proxy to the engine (no RBAC): the issue's yardstick.
start_nginx() {
  command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
  command -v nginx >/dev/null || { log "installing nginx"; apt-get install -y -qq nginx >&2; }
  local port
  port=$(free_port)
  cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://${ENGINE_URL#ws://};
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 1h;
    }
  }
}
NGINX
  nginx -c "$work/nginx.conf" -p "$work" 2>>"$work/nginx-error.log"
  NGINX_URL="wss://localhost:$port"
}

start_engine
start_gateway
start_nginx
log "round trips: callee direct; caller direct vs through the gateway ($TLS_URL)"
mkfifo "$work/owner.fifo"
node bench/roundtrip.mjs --owner "$ENGINE_URL" <"$work/owner.fifo" >/dev/null 2>"$work/owner.err" &
pids+=("$!")
exec 4>"$work/owner.fifo"
gateway_ticks=0
for round in $(seq 1 "$ROUNDS"); do
  for path in direct gateway nginx; do
    url=$ENGINE_URL
    [ "$path" = gateway ] && url=$TLS_URL
    [ "$path" = nginx ] && url=$NGINX_URL
    log "round $round/$ROUNDS: caller $path"
    before=$(cpu_ticks "$GATEWAY_PID")
    node bench/roundtrip.mjs "$url" "$SEQ" "$PAR" "$TIMEOUT_MS" >"$work/$path.$round.json" 2>"$work/rt.err" \
      || { cat "$work/rt.err" "$work/owner.err" >&2; exit 1; }
    [ "$path" = gateway ] && gateway_ticks=$((gateway_ticks + $(cpu_ticks "$GATEWAY_PID") - before))
  done
done
exec 4>&-
stop "$GATEWAY_PID"
kill "$(cat "$work/nginx.pid")" 2>/dev/null || true

idle() { # idle <url> <n> -> KiB per session on a fresh gateway
  local url_var=$1 n=$2 before after fifo=$work/idle.fifo out=$work/idle.out
  start_gateway
  local url=${!url_var}
  sleep 0.5
  before=$(rss_kib "$GATEWAY_PID")
  rm -f "$fifo" "$out"; mkfifo "$fifo"
  node bench/idle.mjs "$url" "$n" <"$fifo" >"$out" 2>"$work/idle.err" &
  local idle_pid=$!
  pids+=("$idle_pid")
  exec 3>"$fifo"
  wait_for 180 grep -q '"ready"' "$out" || { log "idle sessions did not open"; cat "$work/idle.err" "$work/gateway/gateway.log" >&2; exit 1; }
  sleep 2
  after=$(rss_kib "$GATEWAY_PID")
  exec 3>&-
  wait "$idle_pid" 2>/dev/null || true
  stop "$GATEWAY_PID"
  python3 -c "print(f'{($after - $before) / $n:.1f}')"
}

declare -A per_session
for n in $IDLE_COUNTS; do
  for kind in PLAIN_URL TLS_URL; do
    log "idle: $n sessions over ${kind%_URL}"
    per_session[$kind.$n]=$(idle "$kind" "$n")
  done
done

python3 - "$work" "$ROUNDS" "$gateway_ticks" "$(getconf CLK_TCK)" <<PY
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
load = lambda p: [json.load(open(f"{work}/{p}.{r}.json")) for r in range(1, rounds + 1)]
direct, gateway, nginx = load("direct"), load("gateway"), load("nginx")
lost = lambda p: p["lost"] + p["failed"] + p["wrong"]
rows = [
    ("calls/s, 64 in flight", lambda r: r["par"]["calls_per_s"], "{:,.0f}", "median"),
    ("p50 ms, 64 in flight", lambda r: r["par"]["p50_ms"], "{:.3f}", "median"),
    ("p99 ms, 64 in flight", lambda r: r["par"]["p99_ms"], "{:.3f}", "median"),
    ("lost+failed, 64 in flight", lambda r: lost(r["par"]), "{:d}", "sum"),
    ("calls/s, 1 in flight", lambda r: r["seq"]["calls_per_s"], "{:,.0f}", "median"),
    ("p50 ms, 1 in flight", lambda r: r["seq"]["p50_ms"], "{:.3f}", "median"),
    ("p99 ms, 1 in flight", lambda r: r["seq"]["p99_ms"], "{:.3f}", "median"),
]
agg = lambda runs, get, how: sum(map(get, runs)) if how == "sum" else statistics.median(map(get, runs))
lines = [["metric", "direct", "gateway (TLS)", "nginx (TLS)", "gateway/direct", "nginx/direct"]]
ratio = lambda x, y: f"{x / y:.2f}x" if y else "-"
for name, get, fmt, how in rows:
    a, b, c = agg(direct, get, how), agg(gateway, get, how), agg(nginx, get, how)
    lines.append([name, fmt.format(a), fmt.format(b), fmt.format(c), ratio(b, a), ratio(c, a)])
widths = [max(len(l[i]) for l in lines) for i in range(6)]
for i, l in enumerate(lines):
    print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(l, widths))))
    if i == 0:
        print("  ".join("-" * w for w in widths))
par = lambda runs: statistics.median(r["par"]["calls_per_s"] for r in runs)
print(f"gateway/nginx, calls/s at 64 in flight: {par(gateway) / par(nginx):.2f}x")
calls = sum(2000 + r["seq"]["count"] + r["par"]["count"] for r in gateway)
print(f"gateway CPU per call (user+system): {int(sys.argv[3]) / int(sys.argv[4]) * 1e6 / calls:.1f} us")
print(f"\nrounds: {rounds}, alternating (medians; lost summed); calls per round: {direct[0]['seq']['count']} at 1, {direct[0]['par']['count']} at 64 in flight")
PY
echo
echo "gateway RSS per idle session (KiB):"
for n in $IDLE_COUNTS; do
  echo "  $n sessions: plain ${per_session[PLAIN_URL.$n]}, TLS ${per_session[TLS_URL.$n]}"
done

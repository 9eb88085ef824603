#!/usr/bin/env bash
# HTTP through the edge over TLS vs nginx (same TLS: 1.2+1.3, the same AEAD suites, server
# order, http/1.1, keep-alive upstream) in front of the same engine vs the engine directly,
# all in one run: `wrk -t2 -c64 -d10s` against an http trigger served by a Node worker (the
# official iii-sdk). Prints requests/s, p50/p99 and the ratios. Not part of CI.
#
#   bench/edge.sh                      # our engine (iii-gateway dev)
#   III_BIN=/path/to/iii bench/edge.sh # the reference iii engine behind the edge and nginx
# Knobs (env): DURATION=10s CONNS=64 THREADS=2.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}

log() { printf 'bench: %s\n' "$*" >&2; }

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin
  command -v "$tool" >/dev/null || { log "installing $tool"; apt-get install -y -qq "$tool" >&2; }
done
scripts/setup >&2
log "building the release gateway"
cargo build --release --bin iii-gateway >&2

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

addr() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addrs"][sys.argv[2]])' "$1" "$2"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

gateway_bin=${CARGO_TARGET_DIR:-$root/target}/release/iii-gateway
if [ -z "${III_BIN:-}" ]; then
  # Our engine: `iii-gateway dev` runs it embedded, behind the edge.
  RUST_LOG=warn "$gateway_bin" dev --port-base 0 --ready-file "$work/ready.json" >"$work/dev.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 600); do [ -s "$work/ready.json" ] && break; sleep 0.05; done
  [ -s "$work/ready.json" ] || { cat "$work/dev.log" >&2; exit 1; }
  rest=$(addr "$work/ready.json" engine:http)
  worker=$(addr "$work/ready.json" engine:worker)
  cert=$(grep -o '/[^ ]*iii-gateway-dev-[0-9]*/cert.pem' "$work/dev.log" | head -1)
  key=${cert%cert.pem}key.pem
else
  # The reference engine ($III_BIN) on free ports, `iii-gateway run` with only the edge in
  # front of it, and a throwaway self-signed certificate.
  worker=127.0.0.1:$(free_port)
  rest=127.0.0.1:$(free_port)
  cert=$work/cert.pem key=$work/key.pem
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout "$key" -out "$cert" 2>/dev/null
  cat >"$work/config.yaml" <<YAML
workers:
  - name: iii-worker-manager
    config: { host: 127.0.0.1, port: ${worker##*:} }
  - name: iii-http
    config: { host: 127.0.0.1, port: ${rest##*:} }
YAML
  cat >"$work/gateway.yaml" <<YAML
engine: { url: "ws://$worker", rest_url: "http://$rest" }
tls:
  certificates: [{ cert_file: "$cert", key_file: "$key", server_names: [localhost] }]
edge:
  port: 0
  routes: [{ path_prefix: /api/, to: rest }]
admin: { port: 0 }
YAML
  (cd "$work" && III_TELEMETRY_ENABLED=false RUST_LOG=warn exec "$III_BIN" --config config.yaml >engine.log 2>&1) &
  pids+=($!)
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/${worker%:*}/${worker##*:}") 2>/dev/null && break; sleep 0.05; done
  RUST_LOG=warn "$gateway_bin" run --config "$work/gateway.yaml" --ready-file "$work/ready.json" >"$work/dev.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 600); do [ -s "$work/ready.json" ] && break; sleep 0.05; done
  [ -s "$work/ready.json" ] || { cat "$work/dev.log" "$work/engine.log" >&2; exit 1; }
fi
edge=$(addr "$work/ready.json" edge)

mkfifo "$work/worker.in"
node bench/edge-worker.mjs "ws://$worker" <"$work/worker.in" >"$work/worker.out" 2>"$work/worker.log" &
pids+=($!)
exec 3>"$work/worker.in"
for _ in $(seq 200); do grep -q ready "$work/worker.out" 2>/dev/null && break; sleep 0.05; done
for _ in $(seq 200); do curl -sf "http://$rest/hello" >/dev/null && break; sleep 0.05; done

nginx_port=$(free_port)
cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  upstream engine { server $rest; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers on;
    location /api/ {
      proxy_pass http://engine/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" 2>>"$work/nginx-error.log"
for _ in $(seq 200); do curl -sfk "https://127.0.0.1:$nginx_port/api/hello" >/dev/null && break; sleep 0.05; done

run_wrk() { # name url -> "name rps p50_ms p99_ms"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$2" 2>&1)
  python3 - "$1" "$out" <<'PY'
import re, sys
name, out = sys.argv[1], sys.argv[2]
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    x = float(m.group(1)); u = m.group(2)
    return x / 1000 if u == "us" else x * 1000 if u == "s" else x
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print(f"{name} {rps:.0f} {p50:.2f} {p99:.2f} {errs.group(1) if errs else 0}")
PY
}

log "wrk -t$THREADS -c$CONNS -d$DURATION, GET /hello (Node http trigger)"
direct=$(run_wrk direct "http://$rest/hello")
ours=$(run_wrk edge-tls "https://localhost:${edge##*:}/api/hello")
theirs=$(run_wrk nginx-tls "https://localhost:$nginx_port/api/hello")
printf '%-10s %10s %9s %9s %8s\n' target req/s p50_ms p99_ms non2xx
for line in "$direct" "$ours" "$theirs"; do printf '%-10s %10s %9s %9s %8s\n' $line; done
python3 - "$direct" "$ours" "$theirs" <<'PY'
import sys
d, o, n = (float(a.split()[1]) for a in sys.argv[1:])
print(f"edge/direct {o/d:.2f}x   nginx/direct {n/d:.2f}x   edge/nginx {o/n:.2f}x")
PY
exec 3>&-

#!/usr/bin/env bash
# Runs Debian's testssl.sh against the TLS edge of `iii-gateway dev` (self-signed certificate,
# ephemeral ports) and prints its summary. Not part of CI. Expected "NOT ok" lines: chain of
# trust (self-signed) and "neither CRL nor OCSP URI provided" (the dev certificate has neither).
#
#   bench/testssl.sh            # needs apt's testssl.sh (installed here when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

log() { printf 'testssl: %s\n' "$*" >&2; }

if ! command -v testssl >/dev/null && ! command -v testssl.sh >/dev/null; then
  log "installing testssl.sh"
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends testssl.sh >&2
fi
testssl_bin=$(command -v testssl || command -v testssl.sh)

log "building the release gateway"
cargo build --release --bin iii-gateway >&2

work=$(mktemp -d)
gw=""
cleanup() { [ -n "$gw" ] && kill "$gw" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

RUST_LOG=warn "$root/target/release/iii-gateway" dev --port-base 0 --ready-file "$work/ready.json" \
  >"$work/dev.log" 2>&1 &
gw=$!
for _ in $(seq 600); do [ -s "$work/ready.json" ] && break; sleep 0.05; done
[ -s "$work/ready.json" ] || { cat "$work/dev.log" >&2; log "dev never became ready"; exit 1; }
edge=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addrs"]["edge"])' "$work/ready.json")
log "edge at $edge"

"$testssl_bin" --quiet --color 0 --warnings off --ip one \
  --protocols --server-defaults --server-preference --vulnerable \
  "https://localhost:${edge##*:}" | tee "$work/testssl.txt"

echo
echo "== NOT ok / VULNERABLE lines =="
grep -E "NOT ok|VULNERABLE" "$work/testssl.txt" || echo "(none)"

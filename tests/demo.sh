#!/usr/bin/env bash
# The README's demo: start a local Pebble (Let's Encrypt's test CA) with External Account
# Binding required, the way DigiCert CertCentral hands out ACME credentials, issuing
# certificates that live only a few minutes; then run the certkeeper daemon against it and
# watch it issue, renew on its own and report its status. Ctrl-C stops it cleanly.
#
#   ./tests/demo.sh            # installs Pebble and openssl with apt-get when missing
#
# DEMO_SECONDS=N stops the daemon after N seconds instead of waiting for Ctrl-C (the test
# command runs the demo that way). DEMO_DIR=/some/dir keeps the files there. Everything the
# demo starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need pebble || ! need pebble-challtestsrv || ! need openssl; then
  echo "==> installing pebble and openssl (apt-get)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pebble openssl >/dev/null
fi

echo "==> building certkeeper"
cargo build --quiet --bin certkeeper
CERTKEEPER="$PWD/target/debug/certkeeper"

DEMO_SECONDS="${DEMO_SECONDS:-}"
# Certificates live 3 minutes (renewed after 2), or 45 s in a timed run.
if [ -n "$DEMO_SECONDS" ]; then VALIDITY=45; else VALIDITY=180; fi
DEMO_DIR="${DEMO_DIR:-$(mktemp -d -t certkeeper-demo.XXXXXX)}"
mkdir -p "$DEMO_DIR"
cd "$DEMO_DIR"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ACME_PORT=$(free_port); MGMT_PORT=$(free_port); HTTP01_PORT=$(free_port); DNS_PORT=$(free_port); CTS_PORT=$(free_port)

echo "==> making a TLS certificate for Pebble's HTTPS listener (Pebble ships none)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
  -subj "/CN=certkeeper demo Pebble TLS CA" -keyout tls-ca.key -out tls-ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=localhost" -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > tls.ext
openssl x509 -req -in tls.csr -CA tls-ca.pem -CAkey tls-ca.key -CAcreateserial -days 7 \
  -extfile tls.ext -out tls.pem 2>/dev/null

# An EAB credential as a CA hands it out: a key id and a base64url HMAC key.
EAB_KID="demo-kid"
openssl rand 32 | base64 | tr '+/' '-_' | tr -d '=\n' > eab.hmac
chmod 600 eab.hmac

cat > pebble.json <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:$ACME_PORT",
  "managementListenAddress": "127.0.0.1:$MGMT_PORT",
  "certificate": "tls.pem", "privateKey": "tls.key",
  "httpPort": $HTTP01_PORT, "tlsPort": $(free_port), "ocspResponderURL": "",
  "externalAccountBindingRequired": true,
  "externalAccountMACKeys": {"$EAB_KID": "$(cat eab.hmac)"},
  "certificateValidityPeriod": $VALIDITY
}}
JSON

echo "==> starting pebble-challtestsrv (DNS: every name -> 127.0.0.1) and pebble on https://localhost:$ACME_PORT/dir"
pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$DNS_PORT" \
  -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$CTS_PORT" >challtestsrv.log 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 pebble -config pebble.json -dnsserver "127.0.0.1:$DNS_PORT" >pebble.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$ACME_PORT") 2>/dev/null && break
  sleep 0.1
done

cat > certkeeper.toml <<TOML
# A certkeeper inventory for the demo: one CA (the local Pebble) and two certificates.
state_dir = "$DEMO_DIR/state"

[http01]
listen = ["127.0.0.1:$HTTP01_PORT"]    # Pebble validates HTTP-01 on this port

[[ca]]
name = "pebble"
directory = "https://localhost:$ACME_PORT/dir"
eab_kid = "$EAB_KID"
eab_hmac_key_file = "$DEMO_DIR/eab.hmac"
terms_of_service_agreed = true
root_ca_file = "$DEMO_DIR/tls-ca.pem"

[[certificate]]
name = "www"
domains = ["www.example.com", "example.com"]

[[certificate]]
name = "shop"
domains = ["shop.example.com"]
key_type = "rsa2048"
order_id = "123456789"     # DigiCert-style: renewals go to ...?action=reissue&orderId=123456789
action = "reissue"
TOML

run() { echo; echo "\$ certkeeper $*"; "$CERTKEEPER" --config "$DEMO_DIR/certkeeper.toml" "$@"; }
run check
run renew          # one pass, as a cron job would do it: issues both certificates
run status || true

echo
echo "==> now the daemon: certkeeper run (certificates live ${VALIDITY}s; it renews each when half of it is left, as for any certificate of 10 days or less)"
echo "    status any time from another terminal: $CERTKEEPER --config $DEMO_DIR/certkeeper.toml status"
[ -z "$DEMO_SECONDS" ] && echo "    press Ctrl-C to stop it"
"$CERTKEEPER" --config "$DEMO_DIR/certkeeper.toml" run &
daemon=$!
stop_daemon() { kill -INT "$daemon" 2>/dev/null || true; }
trap 'stop_daemon' INT TERM
started=$SECONDS
while kill -0 "$daemon" 2>/dev/null; do
  sleep 1
  elapsed=$((SECONDS - started))
  if [ -n "$DEMO_SECONDS" ] && [ "$elapsed" -ge "$DEMO_SECONDS" ]; then stop_daemon; break; fi
  if [ $((elapsed % 30)) -eq 0 ]; then run status || true; fi
done
wait "$daemon" && code=0 || code=$?
trap cleanup EXIT
echo
echo "==> the daemon exited with status $code"
run status || true
echo
echo "==> the files web servers use:"
ls -l "$DEMO_DIR/state/live/" "$DEMO_DIR/state/live/www/"
echo
echo "Demo files are in $DEMO_DIR (Pebble is stopped now)."
exit "$code"

#!/usr/bin/env bash
# The test command (README, and CI through .ci/run): install what the tests need when it is
# missing, then check formatting and lints and run every test of the workspace, including the
# end-to-end tests against a real Pebble. Nothing is skipped: a missing tool is installed here,
# and a test that cannot find one fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

packages=()
command -v pebble >/dev/null 2>&1 && command -v pebble-challtestsrv >/dev/null 2>&1 || packages+=(pebble)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
command -v certbot >/dev/null 2>&1 || packages+=(certbot)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || packages+=(nginx)
command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ] || packages+=(bind9)
command -v nsupdate >/dev/null 2>&1 && command -v dig >/dev/null 2>&1 || packages+=(bind9-dnsutils)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
# Debian's rpm tool, which reads and installs the RPM (tests/packaging-rpm.sh).
command -v rpm >/dev/null 2>&1 || packages+=(rpm)
[ -x /lib/systemd/systemd-journald ] && command -v journalctl >/dev/null 2>&1 || packages+=(systemd)
command -v unshare >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1 || packages+=(util-linux)
# aiosmtpd, the real SMTP server of the e-mail notification tests (crates/notify/tests/email.rs).
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || packages+=(python3-aiosmtpd)
# PostgreSQL 15, the throwaway clusters of the fleet tests (crates/fleet/tests/support/postgres.rs).
[ -x /usr/lib/postgresql/15/bin/initdb ] && [ -x /usr/lib/postgresql/15/bin/postgres ] || packages+=(postgresql)
if [ "${#packages[@]}" -gt 0 ]; then
  echo "==> installing ${packages[*]} (apt-get)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
fi

# acme2certifier, the second ACME server (ARI and profiles, which Debian's Pebble lacks), pinned,
# in the virtualenv where tests/support/a2c.rs looks for it.
a2c_version=0.46.3
a2c_venv=${CERTKEEPER_A2C_VENV:-/var/cache/certkeeper-tests/a2c-venv}
if [ "$("$a2c_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("acme2certifier"))' 2>/dev/null)" != "$a2c_version" ]; then
  echo "==> installing acme2certifier $a2c_version into $a2c_venv (pip)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO mkdir -p "$(dirname "$a2c_venv")"
  $SUDO python3 -m venv --clear "$a2c_venv"
  $SUDO "$a2c_venv/bin/pip" install -q --disable-pip-version-check "acme2certifier==$a2c_version"
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> demo (quick run, so the README's demo cannot rot)"
DEMO_SECONDS=40 ./tests/demo.sh >/tmp/certkeeper-demo.log 2>&1 || { cat /tmp/certkeeper-demo.log; exit 1; }
grep -q "certificate installed cert=shop" /tmp/certkeeper-demo.log
echo "demo OK"
echo "==> Debian package (build with cargo-deb, install, check, purge)"
./tests/packaging.sh
echo "==> RPM package (build with cargo-generate-rpm from the same binary, query, install into a scratch root and an overlay)"
./tests/packaging-rpm.sh
echo "==> benchmark, quick variant (bench/run --quick, so it cannot rot; writes target/bench-quick.md)"; bench/run --quick >/tmp/certkeeper-bench.log 2>&1 || { cat /tmp/certkeeper-bench.log; exit 1; }
echo "==> cargo test"
log=$(mktemp)
# --no-fail-fast: a failing test binary does not hide the results of the ones after it.
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole workspace (cargo prints one per test binary, the last of
# which is often an empty doc-test run).
echo "test command duration: $((SECONDS - started)) s"
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "all tests: %d passed, %d failed\n", passed, failed }' "$log"
rm -f "$log"
exit "$status"

#!/usr/bin/env bash
# The Debian package, as a user installs it: build it with cargo-deb, `dpkg -i` it, and check
# what it put on the system: the binary, the certkeeper user and its directories, the unit
# (systemd-analyze verify and the security score), the man pages and completions, the
# example configuration (it passes `certkeeper check` once its HMAC variable is set, also as
# the certkeeper user) and that it is a conffile kept across reinstalls. Then purge it.
#
# Needs root (dpkg). Called by tests/run.sh; run alone with `./tests/packaging.sh`.
# CERTKEEPER_DEB_PROFILE picks the cargo profile (default: release, what ships).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
fail() { echo "packaging: FAIL: $*" >&2; exit 1; }
step() { echo "--> $*"; }

if dpkg-query -W -f='${Status}' certkeeper 2>/dev/null | grep -q "ok installed"; then
  fail "a certkeeper package is already installed; this test installs and purges its own: \
remove it first (dpkg --purge certkeeper)"
fi

# Only a state directory this test made is removed at the end.
state_existed=no
[ -e /var/lib/certkeeper ] && state_existed=yes

missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
  step "installing ${missing[*]} (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
  step "installing cargo-deb (cargo install cargo-deb --locked)"
  cargo install cargo-deb --locked --quiet
fi

profile="${CERTKEEPER_DEB_PROFILE:-release}"
deb="target/debian/certkeeper-packaging-test.deb"
step "cargo deb -p certkeeper --profile $profile"
cargo deb -p certkeeper --locked --profile "$profile" --fast --output "$deb" --quiet
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'

purge() { $SUDO dpkg --purge certkeeper >/dev/null 2>&1 || true; }
trap purge EXIT

step "dpkg -i $deb"
$SUDO dpkg -i "$deb"

step "files"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
[ "$(certkeeper --version)" = "certkeeper $version" ] || fail "certkeeper --version: $(certkeeper --version)"
for path in \
  /usr/bin/certkeeper \
  /lib/systemd/system/certkeeper.service \
  /usr/lib/sysusers.d/certkeeper.conf \
  /usr/lib/tmpfiles.d/certkeeper.conf \
  /usr/share/polkit-1/rules.d/50-certkeeper.rules \
  /usr/share/man/man8/certkeeper.8.gz \
  /usr/share/man/man8/certkeeper-import-certbot.8.gz \
  /usr/share/man/man5/certkeeper.toml.5.gz \
  /usr/share/bash-completion/completions/certkeeper \
  /usr/share/zsh/vendor-completions/_certkeeper \
  /usr/share/fish/vendor_completions.d/certkeeper.fish \
  /usr/share/doc/certkeeper/examples/certkeeper.toml \
  /etc/certkeeper/certkeeper.toml; do
  [ -f "$path" ] || fail "$path is missing"
done
zcat /usr/share/man/man5/certkeeper.toml.5.gz | grep -q '^\.TH CERTKEEPER.TOML 5' || fail "certkeeper.toml(5) is not a man page"
bash -c 'source /usr/share/bash-completion/completions/certkeeper && complete -p certkeeper' >/dev/null \
  || fail "the bash completion does not register"
dpkg-query -W -f='${Conffiles}\n' certkeeper | grep -q '/etc/certkeeper/certkeeper.toml' \
  || fail "/etc/certkeeper/certkeeper.toml is not a conffile"

step "user and directories"
IFS=: read -r _ _ _ _ _ home shell < <(getent passwd certkeeper) || fail "no certkeeper user"
[ "$home" = /var/lib/certkeeper ] && [ "$shell" = /usr/sbin/nologin ] || fail "certkeeper user: home $home, shell $shell"
[ "$(stat -c '%a %U:%G' /var/lib/certkeeper)" = "750 certkeeper:certkeeper" ] \
  || fail "/var/lib/certkeeper is $(stat -c '%a %U:%G' /var/lib/certkeeper)"
[ "$(stat -c '%a %U:%G' /etc/certkeeper)" = "750 root:certkeeper" ] \
  || fail "/etc/certkeeper is $(stat -c '%a %U:%G' /etc/certkeeper)"

step "certkeeper check on the installed example"
hmac="$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
set +e
certkeeper check >/dev/null 2>&1; without=$?
set -e
[ "$without" -eq 78 ] || fail "check without CERTKEEPER_DIGICERT_HMAC exited $without, expected 78"
CERTKEEPER_DIGICERT_HMAC="$hmac" certkeeper check
# The daemon's user can read its configuration through /etc/certkeeper (0750 root:certkeeper).
CERTKEEPER_DIGICERT_HMAC="$hmac" runuser -u certkeeper -- certkeeper check >/dev/null
certkeeper import-certbot --help >/dev/null

step "systemd-analyze verify"
if command -v man >/dev/null 2>&1; then man_check=yes; else man_check=no; fi
systemd-analyze verify --man="$man_check" /lib/systemd/system/certkeeper.service
echo "verify OK (man page check: $man_check)"
score="$(systemd-analyze security --offline=true /lib/systemd/system/certkeeper.service 2>/dev/null \
  | sed -n 's/.*Overall exposure level for certkeeper.service: \([0-9.]*\).*/\1/p')"
echo "systemd-analyze security: exposure $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || fail "exposure level $score, expected at most 2.0"

step "reinstall keeps an edited configuration"
echo "# edited by the packaging test" | $SUDO tee -a /etc/certkeeper/certkeeper.toml >/dev/null
$SUDO dpkg -i "$deb" >/dev/null
grep -q "edited by the packaging test" /etc/certkeeper/certkeeper.toml || fail "reinstall replaced the edited conffile"

step "dpkg --purge"
trap - EXIT
$SUDO dpkg --purge certkeeper
[ ! -e /usr/bin/certkeeper ] || fail "/usr/bin/certkeeper is still there after purge"
[ ! -e /etc/certkeeper/certkeeper.toml ] || fail "the conffile is still there after purge"
[ "$state_existed" = yes ] || $SUDO rm -rf /var/lib/certkeeper
echo "packaging OK"

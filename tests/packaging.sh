#!/usr/bin/env bash
# The Debian package, as a user installs it: build it with cargo-deb, `dpkg -i` it, and check
# what it put on the system: the binary, the certkeeper user and its directories, the units
# (systemd-analyze verify and the security scores), the man pages and completions, the
# example configuration (it passes `certkeeper check` once its HMAC variable is set, also as
# the certkeeper user) and that it is a conffile kept across reinstalls. Then purge it.
#
# It also shows what the certkeeper user can reach beyond its own files: writing trigger
# files in /run/certkeeper/reload/, each of which (once root enables certkeeper-reload@NAME.path)
# makes root run exactly `systemctl --job-mode=fail reload NAME.service`; and nothing else (no
# polkit or sudo rule, no setuid file, no extra group).
#
# No systemd runs as PID 1 here, so nothing is started: the units are read the way systemd
# reads them, offline (`systemd-analyze verify` loads them, expands %i and, at debug level,
# prints the loaded unit), and the trigger is checked against the inotify events systemd's
# PathModified= watch uses. Not checked here: the path unit firing, and systemctl's reload
# succeeding inside certkeeper-reload@.service's sandbox.
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
command -v inotifywait >/dev/null 2>&1 || missing+=(inotify-tools)
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
# The reload path units replaced the polkit rule: nothing in the package refers to polkit.
# (Output captured first: `grep -q` ending a pipeline early would fail it under pipefail.)
if grep -qi polkit <<<"$(dpkg-deb --info "$deb"; dpkg-deb --contents "$deb")"; then
  fail "the package still ships or suggests polkit"
fi

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
  /lib/systemd/system/certkeeper-reload@.path \
  /lib/systemd/system/certkeeper-reload@.service \
  /usr/lib/sysusers.d/certkeeper.conf \
  /usr/lib/tmpfiles.d/certkeeper.conf \
  /usr/share/man/man8/certkeeper.8.gz \
  /usr/share/man/man8/certkeeper-import-certbot.8.gz \
  /usr/share/man/man8/certkeeper-cluster.8.gz \
  /usr/share/man/man8/certkeeper-cluster-status.8.gz \
  /usr/share/man/man5/certkeeper.toml.5.gz \
  /usr/share/bash-completion/completions/certkeeper \
  /usr/share/zsh/vendor-completions/_certkeeper \
  /usr/share/fish/vendor_completions.d/certkeeper.fish \
  /usr/share/doc/certkeeper/examples/certkeeper.toml \
  /usr/share/doc/certkeeper/examples/webroot.toml \
  /usr/share/doc/certkeeper/examples/dns-01.toml \
  /usr/share/doc/certkeeper/examples/notify.toml \
  /usr/share/doc/certkeeper/examples/fleet.toml \
  /etc/certkeeper/certkeeper.toml; do
  [ -f "$path" ] || fail "$path is missing"
done
grep -q '^\.TH CERTKEEPER.TOML 5' <<<"$(zcat /usr/share/man/man5/certkeeper.toml.5.gz)" || fail "certkeeper.toml(5) is not a man page"
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
for dir in /run/certkeeper /run/certkeeper/reload; do
  [ "$(stat -c '%a %U:%G' "$dir")" = "750 certkeeper:certkeeper" ] \
    || fail "$dir is $(stat -c '%a %U:%G' "$dir" 2>&1)"
done

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
# The reload units are templates: verify an instance, which systemd loads from the template.
units=(
  /lib/systemd/system/certkeeper.service
  /lib/systemd/system/certkeeper-reload@nginx.path
  /lib/systemd/system/certkeeper-reload@nginx.service
)
# A warning (an unknown or misspelt setting is only "ignoring") fails the test too.
if ! warnings="$(systemd-analyze verify --man="$man_check" "${units[@]}" 2>&1)" || [ -n "$warnings" ]; then
  fail "systemd-analyze verify: $warnings"
fi
echo "verify OK: ${units[*]##*/} (man page check: $man_check)"
# At debug level, verify prints each unit as systemd loaded it: instance expanded, drop-ins
# applied. The checks below read that, not the unit files.
dump="$(SYSTEMD_LOG_LEVEL=debug systemd-analyze verify --man=no "${units[@]}" 2>/dev/null)"
unit_dump() { awk -v u="-> Unit $1:" '$0 ~ /^\t-> Unit / { on = (substr($0, 2) == u) } on' <<<"$dump"; }
setting() { unit_dump "$1" | sed -n "s/^\t\t$2: //p"; }

exposure() {
  systemd-analyze security --offline=true "$1" 2>/dev/null \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
# certkeeper.service rated 1.4 until `SystemCallFilter=capset` (needed to drop
# CAP_NET_BIND_SERVICE after binding) put one @privileged call in its allow list: +0.1.
for limit_unit in 1.5:/lib/systemd/system/certkeeper.service 1.1:/lib/systemd/system/certkeeper-reload@nginx.service; do
  limit="${limit_unit%%:*}" unit="${limit_unit#*:}"
  score="$(exposure "$unit")"
  echo "systemd-analyze security ${unit##*/}: exposure $score"
  awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s != "" && s <= l) }' \
    || fail "${unit##*/}: exposure level $score, expected at most $limit"
done

step "certkeeper.service: user, capabilities, system calls, ports"
[ "$(setting certkeeper.service User)" = certkeeper ] || fail "certkeeper.service runs as $(setting certkeeper.service User)"
[ "$(setting certkeeper.service CapabilityBoundingSet)" = cap_net_bind_service ] \
  || fail "certkeeper.service capabilities: $(setting certkeeper.service CapabilityBoundingSet)"
# The daemon drops CAP_NET_BIND_SERVICE with capset(2), gives keys to their key_group with
# fchown(2) and marks itself non-dumpable with
# prctl(2): both must pass the filter, or they fail with EPERM.
syscalls=" $(setting certkeeper.service SystemCallFilter) "
for call in capset capget prctl fchown; do
  [[ "$syscalls" == *" $call "* ]] || fail "certkeeper.service's SystemCallFilter= denies $call"
done
for call in setuid mount reboot; do
  [[ "$syscalls" != *" $call "* ]] || fail "certkeeper.service's SystemCallFilter= allows $call"
done
[ "$(setting certkeeper.service SocketBindDeny)" = any ] || fail "certkeeper.service: SocketBindDeny=$(setting certkeeper.service SocketBindDeny)"
echo "SocketBindAllow: $(setting certkeeper.service SocketBindAllow)"
[ "$(setting certkeeper.service RuntimeDirectoryPreserve)" = yes ] || fail "certkeeper.service does not keep /run/certkeeper"

step "what the certkeeper user can reach"
# 1. Nothing granted by the package apart from its units: no polkit or sudo rule, no setuid
#    or setgid file, no group but its own.
while IFS= read -r path; do
  case "$path" in *polkit*|*sudoers*) fail "the package installs $path" ;; esac
  if [ -f "$path" ] && { [ -u "$path" ] || [ -g "$path" ]; }; then fail "$path is setuid or setgid"; fi
done < <(dpkg -L certkeeper)
[ "$(id -Gn certkeeper)" = certkeeper ] || fail "the certkeeper user is in the groups: $(id -Gn certkeeper)"
shipped_units="$(dpkg -L certkeeper | grep '^/lib/systemd/system/[^/]*$' | sort | tr '\n' ' ')"
[ "$shipped_units" = "/lib/systemd/system/certkeeper-reload@.path /lib/systemd/system/certkeeper-reload@.service /lib/systemd/system/certkeeper.service " ] \
  || fail "unexpected units in the package: $shipped_units"
# 2. certkeeper-reload@nginx.path watches exactly one file, in certkeeper's runtime directory,
#    and triggers certkeeper-reload@nginx.service.
watched="$(unit_dump certkeeper-reload@nginx.path | sed -n 's/^\t\t\(PathExists\|PathExistsGlob\|PathChanged\|PathModified\|DirectoryNotEmpty\): /\1=/p')"
[ "$watched" = "PathModified=/run/certkeeper/reload/nginx" ] || fail "certkeeper-reload@nginx.path watches: $watched"
[ "$(setting certkeeper-reload@nginx.path Unit)" = certkeeper-reload@nginx.service ] \
  || fail "certkeeper-reload@nginx.path triggers $(setting certkeeper-reload@nginx.path Unit)"
[ "$(setting certkeeper-reload@nginx.path MakeDirectory)" = no ] || fail "certkeeper-reload@nginx.path makes directories"
# 3. certkeeper-reload@nginx.service runs one command, as root: a reload of nginx.service in
#    job mode fail (never replacing another job), and nothing else (no ExecStartPre= & co.).
service="certkeeper-reload@nginx.service"
commands="$(unit_dump "$service" | sed -n 's/^\t\t-> \(Exec[A-Za-z]*\):$/\1/p;s/^\t\t\tCommand Line: /  /p')"
expected="$(printf 'ExecStart\n  /bin/systemctl --job-mode=fail reload nginx.service')"
[ "$commands" = "$expected" ] || fail "$service runs:"$'\n'"$commands"
[ -z "$(setting "$service" User)" ] || fail "$service runs as $(setting "$service" User), expected root"
[ "$(setting "$service" Type)" = oneshot ] || fail "$service: Type=$(setting "$service" Type)"
grep -qx $'\t\tCapabilityBoundingSet: ' <<<"$(unit_dump "$service")" \
  || fail "$service keeps capabilities: $(setting "$service" CapabilityBoundingSet)"
grep -q '^StartLimitBurst=10$' /lib/systemd/system/certkeeper-reload@.service \
  || fail "$service has no start limit"
# 4. Writing the trigger. Only certkeeper may; `touch` of an existing file (what the example's
#    reload targets run) produces events in the mask of systemd's PathModified= watch
#    (src/core/path.c): ATTRIB from setting the times, CLOSE_WRITE from closing.
trigger=/run/certkeeper/reload/nginx
if runuser -u nobody -- touch /run/certkeeper/reload/intruder 2>/dev/null; then
  fail "another user can write a trigger file"
fi
runuser -u certkeeper -- touch "$trigger"
events="$(mktemp)" watch_log="$(mktemp)"
inotifywait -t 10 -e delete_self,move_self,attrib,close_write,create,delete,moved_from,moved_to,modify \
  --format '%e' "$trigger" >"$events" 2>"$watch_log" &
watcher=$!
for _ in $(seq 100); do grep -q 'Watches established' "$watch_log" && break; sleep 0.1; done
runuser -u certkeeper -- touch "$trigger"
wait "$watcher" || fail "touch of the existing $trigger gave no PathModified= event: $(cat "$watch_log")"
echo "touch of the existing trigger file: $(tr '\n' ' ' <"$events")(fires PathModified=)"
rm -f "$events" "$watch_log"
echo "the certkeeper user reaches: for each certkeeper-reload@NAME.path root enabled," \
  "'systemctl --job-mode=fail reload NAME.service' as root; nothing else"

step "reinstall keeps an edited configuration, and hands root's leftovers in the state directory over"
echo "# edited by the packaging test" | $SUDO tee -a /etc/certkeeper/certkeeper.toml >/dev/null
# What an earlier version run as root from a shell left behind, and a link the certkeeper
# user planted to a root file: the first becomes certkeeper's, the second's target stays root's.
$SUDO install -d -m 0700 -o root -g root /var/lib/certkeeper/packaging-test-root-dir
$SUDO touch /var/lib/certkeeper/packaging-test-root-dir/left-by-root
victim="$(mktemp)"
$SUDO ln -s "$victim" /var/lib/certkeeper/packaging-test-link
$SUDO chown -h certkeeper:certkeeper /var/lib/certkeeper/packaging-test-link
$SUDO dpkg -i "$deb" >/dev/null
grep -q "edited by the packaging test" /etc/certkeeper/certkeeper.toml || fail "reinstall replaced the edited conffile"
for left in packaging-test-root-dir packaging-test-root-dir/left-by-root; do
  [ "$(stat -c %U /var/lib/certkeeper/$left)" = certkeeper ] || fail "/var/lib/certkeeper/$left is still root's"
done
[ "$(stat -c %U "$victim")" = root ] || fail "postinst followed a link out of the state directory"
$SUDO rm -rf /var/lib/certkeeper/packaging-test-root-dir /var/lib/certkeeper/packaging-test-link "$victim"

step "dpkg --purge"
trap - EXIT
$SUDO dpkg --purge certkeeper
[ ! -e /usr/bin/certkeeper ] || fail "/usr/bin/certkeeper is still there after purge"
[ ! -e /etc/certkeeper/certkeeper.toml ] || fail "the conffile is still there after purge"
[ "$state_existed" = yes ] || $SUDO rm -rf /var/lib/certkeeper
echo "packaging OK"

#!/usr/bin/env bash
# The RPM for the RHEL family, checked with Debian's rpm tool: build it with cargo-generate-rpm
# from the release binary tests/packaging.sh already built, then read it back with `rpm -qp`
# (name, version, license, arch; every file with its mode and flags; the scriptlets, byte for
# byte those in packaging/rpm/; the requirements, none unexpected) and install it twice:
#
# 1. `rpm --root SCRATCH -i --nodeps --noscripts` into an empty directory: the files as rpm lays
#    them down, `rpm -V` clean, and the binary runs from there.
# 2. Into a copy-on-write overlay of this system's own root, in a private mount namespace, with
#    its scriptlets: %post makes the certkeeper user and its directories, the example passes
#    `certkeeper check`; an upgrade keeps the edited configuration; `rpm -e` stops at
#    /var/lib/certkeeper. The overlay vanishes with the namespace: nothing here is changed
#    (tests/packaging.sh may install the .deb on this same system).
#
#    Then once more on a system without systemd's tools (a container): the useradd fallback.
#
# --nodeps, because this rpm database knows nothing of Debian's glibc: the requirements are
# checked by reading them instead. --force-debian silences Debian's advice to use alien. Not
# checked here: the systemctl branches of the scriptlets (no systemd runs as PID 1;
# tests/packaging.sh checks the units themselves), a RHEL dnf resolving the requirements.
#
# Needs root allowed to mount (unshare -m, overlayfs), as in CI. Called by tests/run.sh; run
# alone with `./tests/packaging-rpm.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "packaging-rpm: FAIL: $*" >&2; exit 1; }
step() { echo "--> $*"; }

# The version CI installs; newer ones may need a newer rustc.
generate_rpm_version=0.21.1

[ "$(id -u)" -eq 0 ] || fail "needs root (rpm --root, mount namespaces): sudo $0"
command -v rpm >/dev/null 2>&1 || fail "Debian's rpm tool is missing: apt-get install rpm (tests/run.sh does)"
if ! cargo generate-rpm --version >/dev/null 2>&1; then
  step "installing cargo-generate-rpm (cargo install cargo-generate-rpm --version $generate_rpm_version --locked)"
  cargo install cargo-generate-rpm --version "$generate_rpm_version" --locked --quiet
fi

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
arch="$(uname -m)"
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
work="$(mktemp -d)"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# tests/packaging.sh's `cargo deb` built this binary with the same profile and flags, so this
# build is a no-op there (and compiles once when the script runs alone).
step "cargo build --release -p certkeeper (already built by tests/packaging.sh)"
cargo build --release --locked -p certkeeper --quiet
# rpmbuild strips binaries and cargo-deb does too; cargo-generate-rpm packages what it is given.
# A stripped copy, so target/release/certkeeper keeps its symbols for benchmarks and backtraces;
# --target-dir points the asset target/release/certkeeper at it.
mkdir -p "$work/target/release"
strip -o "$work/target/release/certkeeper" "$target_dir/release/certkeeper"

rpm_file="$work/certkeeper-$version-1.$arch.rpm"
step "cargo generate-rpm -p crates/certkeeper"
cargo generate-rpm -p crates/certkeeper --target-dir "$work/target" -o "$rpm_file"
# The package an upgrade installs: the same files, release 2.
rpm_file2="$work/certkeeper-$version-2.$arch.rpm"
cargo generate-rpm -p crates/certkeeper --target-dir "$work/target" -o "$rpm_file2" -s 'release = "2"'
query() { rpm -qp "$@" "$rpm_file"; }

step "header"
header="$(query --qf '%{NAME} %{VERSION} %{RELEASE} %{LICENSE} %{ARCH}')"
echo "$header; $(du -h "$rpm_file" | cut -f1)"
[ "$header" = "certkeeper $version 1 Apache-2.0 $arch" ] || fail "rpm header: $header"
query --qf '%{SUMMARY}' | grep -q ACME || fail "summary: $(query --qf '%{SUMMARY}')"

step "files, modes and flags"
# Every asset of [package.metadata.generate-rpm], and nothing else; new man pages come along.
expected="$( {
  printf '%s\n' \
    /etc/certkeeper/certkeeper.toml \
    /usr/bin/certkeeper \
    /usr/lib/systemd/system/certkeeper-reload@.path \
    /usr/lib/systemd/system/certkeeper-reload@.service \
    /usr/lib/systemd/system/certkeeper.service \
    /usr/lib/sysusers.d/certkeeper.conf \
    /usr/lib/tmpfiles.d/certkeeper.conf \
    /usr/share/bash-completion/completions/certkeeper \
    /usr/share/doc/certkeeper/README.md \
    /usr/share/doc/certkeeper/examples/certkeeper.toml \
    /usr/share/doc/certkeeper/examples/dns-01.toml \
    /usr/share/doc/certkeeper/examples/fleet.toml \
    /usr/share/doc/certkeeper/examples/notify-reload.conf.example \
    /usr/share/doc/certkeeper/examples/notify.toml \
    /usr/share/doc/certkeeper/examples/webroot.toml \
    /usr/share/fish/vendor_completions.d/certkeeper.fish \
    /usr/share/man/man5/certkeeper.toml.5 \
    /usr/share/zsh/site-functions/_certkeeper
  for page in packaging/man/*.8; do echo "/usr/share/man/man8/${page##*/}"; done
} | LC_ALL=C sort)"
listed="$(query --list | LC_ALL=C sort)"
[ "$listed" = "$expected" ] || fail "rpm --list differs from the expected files:"$'\n'"$(diff <(echo "$expected") <(echo "$listed") || true)"
echo "$(wc -l <<<"$listed") files"
# Mode, owner and flags (c = config, n = noreplace, d = documentation) of each.
while read -r perms owner flags path; do
  case "$path" in
    /usr/bin/certkeeper) want="-rwxr-xr-x root:root" want_flags="" ;;
    /etc/certkeeper/certkeeper.toml) want="-rw-r--r-- root:root" want_flags="cn" ;;
    /usr/share/doc/*|/usr/share/man/*) want="-rw-r--r-- root:root" want_flags="d" ;;
    *) want="-rw-r--r-- root:root" want_flags="" ;;
  esac
  [ "$perms $owner" = "$want" ] || fail "$path is $perms $owner in the package, expected $want"
  [ "${flags#-}" = "$want_flags" ] || fail "$path has the flags '${flags#-}', expected '$want_flags'"
done < <(query --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} -%{FILEFLAGS:fflags} %{FILENAMES}\n]')
[ "$(query --configfiles)" = /etc/certkeeper/certkeeper.toml ] || fail "config files: $(query --configfiles)"

step "scriptlets"
# cargo-generate-rpm takes a script path that does not exist as the script's text: compare.
for scriptlet in POSTIN:post PREUN:preun POSTUN:postun; do
  tag="${scriptlet%%:*}" file="packaging/rpm/${scriptlet#*:}"
  [ "$(query --qf "%{$tag}")" = "$(cat "$file")" ] || fail "the %${scriptlet#*:} scriptlet is not $file"
  [ "$(query --qf "%{${tag}PROG}")" = /bin/sh ] || fail "%${scriptlet#*:} runs with $(query --qf "%{${tag}PROG}")"
  sh -n "$file" || fail "$file: syntax error"
done
for tag in PREIN PRETRANS POSTTRANS; do
  [ "$(query --qf "%{$tag}")" = "(none)" ] || fail "unexpected %{$tag} scriptlet"
done
grep 'scriptlet' <<<"$(query --scripts)"

step "requirements"
requires="$(query --requires | sort -u)"
# Printed without the symbol versions and rpm's markers (the newest glibc one is below).
echo "requires: $(grep -v -e '(GLIBC_' -e '(GCC_' -e '^rpmlib(' <<<"$requires" | tr '\n' ' ')"
# rpmdeps (through /usr/lib/rpm/find-requires) reads the binary's ELF needs as rpmbuild does:
# glibc's libraries with their symbol versions, libgcc_s and the dynamic loader; then /bin/sh
# and what the scriptlets run; then rpm's own markers.
while IFS= read -r req; do
  case "$req" in
    /bin/sh | coreutils | shadow-utils | 'rtld(GNU_HASH)' | rpmlib\(*) ;;
    # What rpm adds for a package with configuration files.
    "config(certkeeper) = $version-1") ;;
    libc.so.6* | libm.so.6* | libgcc_s.so.1* | ld-linux-*.so.* | ld64.so.*) ;;
    *) fail "unexpected requirement: $req" ;;
  esac
done <<<"$requires"
for needed in /bin/sh coreutils shadow-utils 'libc.so.6()(64bit)' 'libgcc_s.so.1()(64bit)'; do
  grep -qxF "$needed" <<<"$requires" || fail "no requirement on $needed"
done
# The newest glibc symbol version decides the oldest RHEL the package installs on.
glibc="$(grep -o 'GLIBC_[0-9.]*' <<<"$requires" | sort -V | tail -n1)"
echo "newest glibc symbol version required: $glibc"

step "rpm --root SCRATCH -i --nodeps --noscripts"
scratch="$work/root"
mkdir -p "$scratch"
rpm --root "$scratch" --initdb
rpm --root "$scratch" -i --nodeps --noscripts --force-debian "$rpm_file"
[ "$(rpm --root "$scratch" -q certkeeper)" = "certkeeper-$version-1.$arch" ] || fail "rpm -q in the scratch root"
while IFS= read -r path; do
  [ -f "$scratch$path" ] || fail "$path was not installed"
  want=644
  [ "$path" = /usr/bin/certkeeper ] && want=755
  [ "$(stat -c '%a %U:%G' "$scratch$path")" = "$want root:root" ] \
    || fail "$path is installed as $(stat -c '%a %U:%G' "$scratch$path"), expected $want root:root"
done <<<"$listed"
verify="$(rpm --root "$scratch" -V --nodeps certkeeper 2>&1)" || fail "rpm -V: $verify"
[ "$("$scratch/usr/bin/certkeeper" --version)" = "certkeeper $version" ] \
  || fail "the installed binary says: $("$scratch/usr/bin/certkeeper" --version 2>&1)"
echo "installed into a scratch root: $(wc -l <<<"$listed") files, rpm -V clean, $("$scratch/usr/bin/certkeeper" --version)"
rm -rf "$scratch"

step "rpm -i, -U and -e with scriptlets, in an overlay of / (a private mount namespace)"
# The part below runs in the namespace: $merged is this system's root, copy-on-write, into
# which rpm installs through chroot. The rpm files are copied in (other mounts are not there).
cat >"$work/overlay.sh" <<'INSIDE'
set -euo pipefail
work="$1" version="$2" arch="$3"
fail() { echo "packaging-rpm: FAIL: $*" >&2; exit 1; }
mount -t tmpfs tmpfs "$work/ovl" || fail "cannot mount: this needs root allowed to mount (unshare -m, overlayfs), as in CI"
mkdir "$work/ovl/upper" "$work/ovl/work" "$work/ovl/merged"
merged="$work/ovl/merged"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/ovl/upper,workdir=$work/ovl/work" "$merged"
mount -t proc proc "$merged/proc"
mount --rbind /dev "$merged/dev"
mount -t tmpfs tmpfs "$merged/tmp"
# A /run of its own: the test must not see (or touch) this system's /run/certkeeper.
mount -t tmpfs tmpfs "$merged/run"
cp "$work"/certkeeper-*.rpm "$merged/tmp/"
in_root() { chroot "$merged" "$@"; }
# Its own rpm database, empty, in the overlay.
in_root rpm --initdb
mode() { in_root stat -c '%a %U:%G' "$1" 2>&1; }

# What tests/packaging.sh (or an earlier run) left on this system is removed from the overlay,
# so the scriptlets have to make it.
without_certkeeper() {
  in_root userdel certkeeper >/dev/null 2>&1 || true
  in_root groupdel certkeeper >/dev/null 2>&1 || true
  rm -rf "$merged/var/lib/certkeeper" "$merged/etc/certkeeper" "$merged/run/certkeeper"
  if in_root getent passwd certkeeper >/dev/null || in_root getent group certkeeper >/dev/null; then
    fail "could not remove the certkeeper user from the overlay"
  fi
}
# What %post makes: the user (as the sysusers.d line says) and the directories.
check_post() {
  local home shell
  IFS=: read -r _ _ _ _ _ home shell < <(in_root getent passwd certkeeper) || fail "%post made no certkeeper user"
  [ "$home" = /var/lib/certkeeper ] && [ "$shell" = /usr/sbin/nologin ] || fail "certkeeper user: home $home, shell $shell"
  [ "$(in_root id -Gn certkeeper)" = certkeeper ] || fail "the certkeeper user is in the groups: $(in_root id -Gn certkeeper)"
  [ "$(mode /var/lib/certkeeper)" = "750 certkeeper:certkeeper" ] || fail "/var/lib/certkeeper is $(mode /var/lib/certkeeper)"
  for dir in /etc/certkeeper /etc/certkeeper/conf.d; do
    [ "$(mode "$dir")" = "750 root:certkeeper" ] || fail "$dir is $(mode "$dir")"
  done
}

without_certkeeper
echo "rpm -i (with %post):"
in_root rpm -i --nodeps --force-debian "/tmp/certkeeper-$version-1.$arch.rpm" 2>&1 | sed 's/^/  /'
check_post
for dir in /run/certkeeper /run/certkeeper/reload; do
  [ "$(mode "$dir")" = "750 certkeeper:certkeeper" ] || fail "$dir is $(mode "$dir")"
done
[ "$(in_root certkeeper --version)" = "certkeeper $version" ] || fail "certkeeper --version: $(in_root certkeeper --version 2>&1)"
set +e
in_root certkeeper check >/dev/null 2>&1; without=$?
set -e
[ "$without" -eq 78 ] || fail "check without CERTKEEPER_DIGICERT_HMAC exited $without, expected 78"
hmac="$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
# The daemon's user reads its configuration through /etc/certkeeper (0750 root:certkeeper).
CERTKEEPER_DIGICERT_HMAC="$hmac" in_root runuser -u certkeeper -- certkeeper check >/dev/null \
  || fail "certkeeper check as the certkeeper user"
echo "user, directories and certkeeper check as the certkeeper user: OK"

echo "# edited by the packaging test" >>"$merged/etc/certkeeper/certkeeper.toml"
in_root rpm -U --nodeps --force-debian "/tmp/certkeeper-$version-2.$arch.rpm" 2>&1 | sed 's/^/  /'
[ "$(in_root rpm -q certkeeper)" = "certkeeper-$version-2.$arch" ] || fail "after rpm -U: $(in_root rpm -q certkeeper)"
grep -q "edited by the packaging test" "$merged/etc/certkeeper/certkeeper.toml" || fail "rpm -U replaced the edited configuration"
[ ! -e "$merged/etc/certkeeper/certkeeper.toml.rpmnew" ] || fail "rpm -U left certkeeper.toml.rpmnew for an unchanged example"
echo "rpm -U to release 2 kept the edited configuration"

echo "rpm -e (with %preun, %postun):"
in_root rpm -e --force-debian certkeeper 2>&1 | sed 's/^/  /'
[ ! -e "$merged/usr/bin/certkeeper" ] || fail "/usr/bin/certkeeper is still there after rpm -e"
[ ! -e "$merged/etc/certkeeper/certkeeper.toml" ] || fail "the configuration is still there after rpm -e"
grep -q "edited by the packaging test" "$merged/etc/certkeeper/certkeeper.toml.rpmsave" \
  || fail "rpm -e did not keep the edited configuration as certkeeper.toml.rpmsave"
[ ! -e "$merged/run/certkeeper" ] || fail "/run/certkeeper is still there after rpm -e"
[ -d "$merged/var/lib/certkeeper" ] || fail "rpm -e removed /var/lib/certkeeper"
echo "rpm -e kept /var/lib/certkeeper and certkeeper.toml.rpmsave, removed the rest"

# A container: no systemd-sysusers or systemd-tmpfiles, so %post uses groupadd and useradd.
without_certkeeper
for tool in systemd-sysusers systemd-tmpfiles; do
  while path="$(in_root sh -c "command -v $tool")"; do rm "$merged$path"; done
done
in_root rpm -i --nodeps --force-debian "/tmp/certkeeper-$version-1.$arch.rpm" >/dev/null
check_post
in_root rpm -e --force-debian certkeeper >/dev/null 2>&1
echo "without systemd's tools, %post made the same user and directories"
INSIDE
mkdir "$work/ovl"
passwd_before="$(cat /etc/passwd /etc/group | md5sum)"
unshare --mount --propagation private bash "$work/overlay.sh" "$work" "$version" "$arch" \
  || fail "rpm -i, -U and -e with scriptlets in the overlay (above)"
[ "$(cat /etc/passwd /etc/group | md5sum)" = "$passwd_before" ] || fail "the overlay install changed this system's users"

echo "rpm packaging OK"

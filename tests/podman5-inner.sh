#!/usr/bin/env bash
# Runs inside ../shared/podman5-chroot.sh (Debian trixie, Podman 5.4, netavark nftables driver).
set -euo pipefail
# Debian's podman Recommends catatonit, which debootstrap --include leaves out. Without it Podman 5 cannot build
# its local pause image, so `podman pod create` fails (no registry to pull one from).
if ! command -v catatonit >/dev/null && [ ! -x /usr/libexec/podman/catatonit ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends catatonit >/dev/null
fi
V=/opt/podwall-venv
# pip in the chroot trusts Debian's CAs only. A host behind a TLS-inspecting proxy (this sandbox and its CI) adds
# its own CA, so trust the host's bundle: podman5-chroot.sh runs this script as a direct child of a process
# outside the chroot, whose /proc/PPID/root is the host's /.
host_ca=/proc/$PPID/root/etc/ssl/certs/ca-certificates.crt
if [ -r "$host_ca" ] && ! cmp -s "$host_ca" /etc/ssl/certs/ca-certificates.crt; then
  export PIP_CERT=$host_ca SSL_CERT_FILE=$host_ca   # pip >= 24.2 verifies through truststore: SSL_CERT_FILE
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x $V/bin/python ] || [ "$(cat $V/.stamp 2>/dev/null)" != "$want" ]; then
  python3 -m venv $V
  PIP_FIND_LINKS= $V/bin/pip install -q -e ".[test]"   # the host's PIP_FIND_LINKS dir is not in the chroot
  echo "$want" > $V/.stamp
fi
podman --version
rc=0
$V/bin/python -m pytest -m e2e -p no:cacheprovider "$@" || rc=$?
[ "$rc" = 5 ] && { echo "no e2e tests collected under Podman 5" >&2; exit 1; }
exit $rc

#!/usr/bin/env bash
# Runs inside ../shared/podman5-chroot.sh (Debian trixie, Podman 5.4, netavark nftables driver).
set -euo pipefail
# Debian's podman Recommends catatonit, which debootstrap --include leaves out. Without it Podman 5 cannot build
# its local pause image, so `podman pod create` fails (no registry to pull one from).
if ! command -v catatonit >/dev/null && [ ! -x /usr/libexec/podman/catatonit ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends catatonit >/dev/null
fi
V=/opt/podwall-venv
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x $V/bin/python ] || [ "$(cat $V/.stamp 2>/dev/null)" != "$want" ]; then
  python3 -m venv $V
  $V/bin/pip install -q -e ".[test]"
  echo "$want" > $V/.stamp
fi
podman --version
rc=0
$V/bin/python -m pytest -m e2e -p no:cacheprovider "$@" || rc=$?
[ "$rc" = 5 ] && { echo "no e2e tests collected under Podman 5" >&2; exit 1; }
exit $rc

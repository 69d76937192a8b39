#!/usr/bin/env bash
# Runs inside ../shared/podman5-chroot.sh (Debian trixie, Podman 5.4, netavark nftables driver).
set -euo pipefail
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

#!/usr/bin/env bash
# Checks gangway.service with systemd's own tools, without installing anything:
#   - `systemd-analyze verify`: every directive is known and well-formed, and the commands
#     exist (the unit's /usr/local/bin/gangway is pointed at a built binary in a copy);
#   - `systemd-analyze security --offline=yes`: the hardening's exposure score.
#
# Usage: packaging/systemd/verify.sh [PATH_TO_GANGWAY]   (default: builds it with cargo)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

binary=${1:-}
if [ -z "$binary" ]; then
    (cd "$root" && cargo build -q -p gangway)
    binary="${CARGO_TARGET_DIR:-$root/target}/debug/gangway"
fi
sed "s#/usr/local/bin/gangway#$binary#g" "$here/gangway.service" >"$work/gangway.service"
systemd-analyze verify --man=no "$work/gangway.service"
echo "systemd-analyze verify: ok"
systemd-analyze security --offline=yes "$work/gangway.service" | tail -1

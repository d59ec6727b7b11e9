#!/bin/sh
# verify-unit.sh SYSTEMD_ANALYZE UNIT INSTALLED_BINARY BUILT_BINARY
# `systemd-analyze verify` of voxprint.service, its ExecStart pointed at the
# built program (verify wants an executable there). verify exits 0 even for
# unknown keys or bad values: any line it prints is a failure too.
set -eu
analyze=$1 unit=$2 installed=$3 built=$4
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|$installed|$built|g" "$unit" > "$dir/voxprint.service"
grep -q "^ExecStart=$built serve" "$dir/voxprint.service" ||
  { echo "the unit's ExecStart does not run $installed serve"; exit 1; }
status=0
"$analyze" verify --man=no "$dir/voxprint.service" > "$dir/out" 2>&1 || status=$?
cat "$dir/out"
[ "$status" -eq 0 ] && [ ! -s "$dir/out" ]

#!/bin/bash
# Sequential-write throughput through the test passthrough (fuse-native) or
# bindfs, on a temp dir on the same disk:
#   test/integration/fuse-native/fio-bench.sh passthrough|bindfs [json-config]
# json-config is passed to test/fakes/passthrough-fuse.ts, e.g. '{"timeout":15000}'.
set -euo pipefail
kind=${1:?usage: $0 passthrough|bindfs [json-config]}
cfg=${2:-'{}'}
repo=$(cd "$(dirname "$0")/../../.." && pwd)
root=$(mktemp -d /tmp/pacio-fio-XXXXXX)
mkdir -p "$root/backing" "$root/mnt"
pid=

cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  fusermount -uz "$root/mnt" 2>/dev/null || true
  grep -q " $root/mnt " /proc/mounts || rm -rf "$root"
}
trap cleanup EXIT

if [ "$kind" = passthrough ]; then
  (cd "$repo" && exec node --import tsx test/fakes/passthrough-fuse.ts "$root/backing" "$root/mnt" "$cfg" 2>/dev/null) &
  pid=$!
else
  bindfs -o big_writes "$root/backing" "$root/mnt"
fi
for _ in $(seq 100); do grep -q " $root/mnt " /proc/mounts && break; sleep 0.1; done

fio --name=seq --rw=write --bs=1M --size=1G --end_fsync=1 --directory="$root/mnt" --output-format=json > "$root/fio.json"
python3 -c "
import json
w = json.load(open('$root/fio.json'))['jobs'][0]['write']
print('$kind $cfg: %.0f MB/s (%.0f MiB/s), %d ms' % (w['bw_bytes'] / 1e6, w['bw_bytes'] / 2**20, w['runtime']))
"

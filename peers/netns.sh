#!/usr/bin/env bash
# Try mDNS discovery on one machine: N peers, each in its own network namespace,
# joined by a bridge, finding each other by mDNS alone (no --peer). Needs root.
#
#   sudo peers/netns.sh [N] [DIR]      (default: 3 peers, folders under ./demo-netns)
#
# Each peer gets DIR/peer-K and the address 10.78.0.(10+K). The namespaces are
# wsdemo-sw (the bridge) and wsdemo-K; Ctrl-C stops the peers this script
# started (by PID) and deletes the namespaces. Multicast stays inside them.
set -euo pipefail

count=${1:-3}
base=$(realpath -m "${2:-demo-netns}")
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$(command -v python3)}
corpus="$here/../tests/fixtures/corpus"
pids=()
namespaces=()

cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

add_ns() { ip netns add "$1"; namespaces+=("$1"); }

add_ns wsdemo-sw
ip -n wsdemo-sw link add br0 type bridge mcast_snooping 0
ip -n wsdemo-sw link set br0 up

# One workspace group: the first folder is initialised, the others join it.
"$python" -m worksync_p2p init "$base/peer-1" >/dev/null
code=$("$python" -m worksync_p2p invite -w "$base/peer-1" 2>/dev/null)
cp -n "$corpus"/*.md "$base/peer-1/" 2>/dev/null || true

for k in $(seq 1 "$count"); do
  ns="wsdemo-$k"; address="10.78.0.$((10 + k))"
  add_ns "$ns"
  ip -n wsdemo-sw link add "p$k" type veth peer name eth0 netns "$ns"
  ip -n wsdemo-sw link set "p$k" master br0
  ip -n wsdemo-sw link set "p$k" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$address/24" dev eth0
  ip -n "$ns" link set eth0 multicast on
  ip -n "$ns" link set eth0 up
  if [ "$k" -gt 1 ]; then "$python" -m worksync_p2p join "$code" "$base/peer-$k" >/dev/null; fi
  # Process substitution, not a pipe: $! is then the peer itself, which we stop by PID.
  ip netns exec "$ns" "$python" -m worksync_p2p up "$base/peer-$k" \
    --host "$address" --interface "$address" > >(sed -u "s/^/[peer-$k] /") 2>&1 &
  pids+=($!)
done

echo "Peers are up in $base/peer-1 .. peer-$count; edit any file there. Ctrl-C stops them."
wait

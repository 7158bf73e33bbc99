#!/bin/bash
# logflood.sh: what one app writing output as fast as it can (`yes`) costs
# the daemon: its CPU time over 10 s, and the p50/p99 of 200 requests to a
# neighbour app meanwhile, and the size of the flooding app's logs.
# Usage: scripts/logflood.sh PIKU_BINARY BASEPORT
set -eu
piku=$1 base=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/apps/spam" "$root/apps/good"
printf 'worker: yes "spam spam spam spam spam spam spam spam spam spam spam spam spam spam"\n' > "$root/apps/spam/Procfile"
printf 'NGINX_SERVER_NAME=good.test\n' > "$root/apps/good/ENV"
printf 'hello\n' > "$root/apps/good/hello.txt"
printf 'web: python3 -m http.server $PORT --bind 127.0.0.1\n' > "$root/apps/good/Procfile"
export PIKU_ROOT=$root PIKU_HTTP=127.0.0.1:$base PIKU_HTTPS=127.0.0.1:$((base+1)) PIKU_ACME=false
export PIKU_PORTS=$((base+10))-$((base+90)) HOME=$root/home
"$piku" daemon 2>"$root/daemon.log" &
pid=$!
for _ in $(seq 150); do
	curl -s -H 'Host: good.test' "http://127.0.0.1:$base/hello.txt" | grep -q hello && break
	sleep 0.2
done
sleep 2
tck=$(getconf CLK_TCK)
t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
sleep 10
t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
echo "daemon CPU over 10 s: $(echo "scale=2; ($t1-$t0)/$tck" | bc) s"
for _ in $(seq 200); do
	curl -s -o /dev/null -w '%{time_total}\n' -H 'Host: good.test' "http://127.0.0.1:$base/hello.txt"
done | sort -n | awk '{a[NR]=$1} END {printf "neighbour: p50 %.1f ms, p99 %.1f ms (200 requests)\n", a[int(NR*0.5)]*1000, a[int(NR*0.99)]*1000}'
du -sh "$root/logs/spam"
kill -INT $pid
wait $pid || true

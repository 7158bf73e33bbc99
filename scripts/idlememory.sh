#!/bin/sh
# idlememory.sh: the memory a dozen sleeping apps free: the RSS `piku ps`
# reports for the web instances of 12 Python apps (python3 -m
# http.server) and of 12 Node apps, before they fall asleep
# (PIKU_IDLE_TIMEOUT) and after.
# Usage: scripts/idlememory.sh PIKU_BINARY WORKDIR BASEPORT
set -eu
piku=$1 work=$2 base=$3
rm -rf "$work" && mkdir -p "$work/root/apps"
export PIKU_ROOT="$work/root" PIKU_HTTP="127.0.0.1:$base" PIKU_HTTPS="" PIKU_ACME=false
export PIKU_PORTS="$((base+10))-$((base+60))"
apps=""
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
	d="$PIKU_ROOT/apps/py$i" && mkdir -p "$d" && apps="$apps py$i"
	printf 'web: python3 -m http.server $PORT --bind 127.0.0.1\n' > "$d/Procfile"
	printf 'NGINX_SERVER_NAME=py%s.test\nPIKU_IDLE_TIMEOUT=%s\n' $i "${IDLE:-20}" > "$d/ENV"
	d="$PIKU_ROOT/apps/node$i" && mkdir -p "$d" && apps="$apps node$i"
	printf 'web: node server.js\n' > "$d/Procfile"
	echo "require('http').createServer((q, s) => s.end('hi')).listen(process.env.PORT, '127.0.0.1')" > "$d/server.js"
	printf 'NGINX_SERVER_NAME=node%s.test\nPIKU_IDLE_TIMEOUT=%s\n' $i "${IDLE:-20}" > "$d/ENV"
done
"$piku" daemon >"$work/daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon; wait $daemon' EXIT
rss() { # the total RSS of the apps' instances, in MiB
	for a in $apps; do "$piku" ps "$a" --json; done |
		grep -o '"rss_bytes": *[0-9]*' | awk -F: '{s += $2} END {printf "%.1f", s / 1048576}'
}
for a in $apps; do
	until "$piku" ps $a 2>/dev/null | grep -q '^web\.1 *running'; do sleep 0.2; done
done
sleep 2 # let the RSS sampling catch up
echo "awake: $(rss) MiB in the web instances of 12 Python and 12 Node apps"
for a in $apps; do
	until "$piku" ps $a | grep -q '^web\.1 *sleeping'; do sleep 0.5; done
done
echo "asleep: $(rss) MiB"

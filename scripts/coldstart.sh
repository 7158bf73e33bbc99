#!/bin/sh
# coldstart.sh: the cold start a client sees for a sleeping Python, Node
# and Go web app (PIKU_IDLE_TIMEOUT), median of 5, beside the app's own
# start time (its process started by hand until it answers).
# Usage: scripts/coldstart.sh PIKU_BINARY WORKDIR BASEPORT
set -eu
piku=$1 work=$2 base=$3
rm -rf "$work" && mkdir -p "$work/root/apps"
export PIKU_ROOT="$work/root" PIKU_HTTP="127.0.0.1:$base" PIKU_HTTPS="" PIKU_ACME=false
export PIKU_PORTS="$((base+10))-$((base+40))"
apps="$PIKU_ROOT/apps"
mkdir -p "$apps/py" "$apps/node" "$apps/go" "$work/gosrc"
printf 'web: python3 -m http.server $PORT --bind 127.0.0.1\n' > "$apps/py/Procfile"
echo hi > "$apps/py/index.html"
printf 'web: node server.js\n' > "$apps/node/Procfile"
echo "require('http').createServer((q, s) => s.end('hi')).listen(process.env.PORT, '127.0.0.1')" > "$apps/node/server.js"
cat > "$work/gosrc/main.go" <<'GO'
package main

import (
	"net/http"
	"os"
)

func main() {
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi")) }))
}
GO
(cd "$work/gosrc" && cat > go.mod <<'MOD'
module coldstart
MOD
go build -o "$apps/go/server" .)
printf 'web: ./server\n' > "$apps/go/Procfile"
for a in py node go; do printf 'NGINX_SERVER_NAME=%s.test\nPIKU_IDLE_TIMEOUT=1\n' $a > "$apps/$a/ENV"; done

ms() { echo "$(( ($2 - $1) / 1000000 ))"; }
median() { sort -n | sed -n 3p; }

# The app's own start: the process started by hand until it answers.
own() {
	dir=$1 cmd=$2 port=$((base+45))
	for i in 1 2 3 4 5; do
		t0=$(date +%s%N)
		(cd "$dir" && PORT=$port exec sh -c "$cmd") >/dev/null 2>&1 &
		pid=$!
		until curl -s -o /dev/null "http://127.0.0.1:$port/"; do :; done
		t1=$(date +%s%N)
		kill $pid; wait $pid 2>/dev/null || true
		ms $t0 $t1
	done | median
}

"$piku" daemon >"$work/daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon; wait $daemon' EXIT
for a in py node go; do
	until "$piku" ps $a 2>/dev/null | grep -q '^web\.1 *running'; do sleep 0.1; done
done
for a in py node go; do
	cold=$(for i in 1 2 3 4 5; do
		until "$piku" ps $a | grep -q '^web\.1 *sleeping'; do sleep 0.2; done
		t0=$(date +%s%N)
		curl -s -o /dev/null -w '' -H "Host: $a.test" "http://127.0.0.1:$base/"
		t1=$(date +%s%N)
		ms $t0 $t1
	done | median)
	case $a in
	py) self=$(own "$apps/py" 'exec python3 -m http.server $PORT --bind 127.0.0.1') ;;
	node) self=$(own "$apps/node" 'exec node server.js') ;;
	go) self=$(own "$apps/go" 'exec ./server') ;;
	esac
	echo "$a: cold start seen by the client ${cold} ms (median of 5); the app's own start ${self} ms"
done

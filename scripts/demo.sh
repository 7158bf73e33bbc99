#!/usr/bin/env bash
# make demo: piku end to end on a throwaway PIKU_ROOT, loopback ports and the
# bundled example app (examples/hello). Nothing outside the temp dir is
# touched. DEMO_WAIT=0 exits after the tour instead of waiting for Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/bin/piku"
DEMO="$(mktemp -d /tmp/piku-demo.XXXXXX)"
export PIKU_ROOT="$DEMO/root" PIKU_ACME=false HOME="$DEMO/home"
mkdir -p "$HOME"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port); HTTPS_PORT=$(free_port)
export PIKU_HTTP="127.0.0.1:$HTTP_PORT" PIKU_HTTPS="127.0.0.1:$HTTPS_PORT"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
cleanup() {
	if [ -n "${DAEMON:-}" ] && kill -0 "$DAEMON" 2>/dev/null; then
		say "Stopping the daemon (every app stops gracefully)"
		kill -TERM "$DAEMON"; wait "$DAEMON" || true
	fi
	rm -rf "$DEMO"
}
trap cleanup EXIT

say "PIKU_ROOT is $PIKU_ROOT"
"$BIN" setup | head -1

say "Committing the example app (examples/hello) to a fresh git repository"
git init -q -b main "$DEMO/hello"
cp -r examples/hello/. "$DEMO/hello/"
git -C "$DEMO/hello" add -A
git -C "$DEMO/hello" -c user.name=demo -c user.email=demo@example.invalid commit -qm "hello, piku"

say "Starting the daemon: proxy on http://127.0.0.1:$HTTP_PORT and https://127.0.0.1:$HTTPS_PORT"
"$BIN" daemon 2>"$DEMO/daemon.log" &
DAEMON=$!
for _ in $(seq 100); do "$BIN" apps >/dev/null 2>&1 && break; sleep 0.1; done

say "git push piku main   (over an ssh stand-in that runs piku's forced command)"

# ssh stand-in: runs what sshd's forced command would run for piku's key,
# so the push goes through the same git-receive-pack and hooks as over SSH.
cat >"$DEMO/ssh" <<EOF2
#!/bin/sh
while [ \$# -gt 1 ]; do shift; done
SSH_ORIGINAL_COMMAND="\$1" exec "$BIN"
EOF2
chmod +x "$DEMO/ssh"
git -C "$DEMO/hello" remote add piku piku@demo:hello
GIT_SSH_COMMAND="$DEMO/ssh" git -C "$DEMO/hello" push piku main

say "piku ps hello"
for _ in $(seq 100); do "$BIN" ps hello 2>/dev/null | grep -q 'web.1 *running' && break; sleep 0.1; done
"$BIN" ps hello

say "curl -H 'Host: hello.localhost' http://127.0.0.1:$HTTP_PORT/   (through piku's proxy)"
for _ in $(seq 50); do curl -fsS -H 'Host: hello.localhost' "http://127.0.0.1:$HTTP_PORT/" && break; sleep 0.1; done

say "piku config:set hello GREETING='set live'   (zero-downtime rollout)"
"$BIN" config:set hello GREETING='set live'
curl -fsS -H 'Host: hello.localhost' "http://127.0.0.1:$HTTP_PORT/"

say "piku ps:scale hello web=2"
"$BIN" ps:scale hello web=2
"$BIN" ps hello

say "piku releases hello   (each push is a release; piku rollback puts an older one back)"
"$BIN" releases hello

say "piku logs hello -n 5"
sleep 1
"$BIN" logs hello -n 5

cat <<EOF2

Try it yourself in another terminal:
  export PIKU_ROOT=$PIKU_ROOT
  $BIN ps hello
  $BIN logs hello -f
  curl -H 'Host: hello.localhost' http://127.0.0.1:$HTTP_PORT/
  curl -k --resolve hello.localhost:$HTTPS_PORT:127.0.0.1 https://hello.localhost:$HTTPS_PORT/
  $BIN restart hello
  $BIN run hello -- env
EOF2
if [ "${DEMO_WAIT:-1}" = 1 ] && [ -t 0 ]; then
	say "The daemon keeps running; press Ctrl-C to stop it and remove the demo root"
	wait "$DAEMON" || true
fi

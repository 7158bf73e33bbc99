#!/usr/bin/env bash
# Installs what the tests drive for real, when it is missing: OpenSSH's
# sshd, uWSGI with its Python 3 plugin, nginx (for the proxy benchmark),
# python3-venv, npm, a C compiler (go test -race needs cgo), and the Go
# tools pebble, staticcheck and deadcode. Needs root for apt-get; without
# root it only reports what is missing.
#
# Everything apt installs comes from one apt-get install. When another
# apt-get or dpkg holds the package lock (unattended-upgrades on a fresh
# machine, another checkout's tests), it waits for it, for at most
# PIKU_APT_LOCK_WAIT seconds (default 600). The Go tools are built once per
# machine into $(go env GOPATH)/bin and rebuilt only when their version
# here changes.
set -euo pipefail

lock_wait=${PIKU_APT_LOCK_WAIT:-600}
pebble_version=v2.10.1 # internal/pebbletest.Version
staticcheck_version=v0.8.2
deadcode_version=v0.39.0

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
{ have ssh && have ssh-keygen; } || need_apt+=(openssh-client)
have git || need_apt+=(git)
have uwsgi || need_apt+=(uwsgi-core)
[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || need_apt+=(uwsgi-plugin-python3)
[ -x /usr/sbin/nginx ] || need_apt+=(nginx)
have python3 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
have npm || need_apt+=(npm)
have ps || need_apt+=(procps)
# go test -race builds with cgo; go install fetches over HTTPS.
have gcc || need_apt+=(gcc libc6-dev)
[ -e /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)

# apt_get runs apt-get, waiting up to lock_wait seconds in all for the
# locks another apt-get or dpkg holds: dpkg's own wait for its locks
# (DPkg::Lock::Timeout), and a retry when the lock is apt's list or archive
# lock, which apt-get does not wait for. Any other failure ends it at once.
apt_get() {
	local deadline=$((SECONDS + lock_wait)) out status
	while :; do
		status=0
		out=$(apt-get -o DPkg::Lock::Timeout="$lock_wait" "$@" 2>&1) || status=$?
		if [ $status = 0 ]; then
			return 0
		fi
		if ! grep -q -e 'Could not get lock' -e 'Unable to lock' -e 'Unable to acquire the dpkg frontend lock' <<<"$out" ||
			[ $SECONDS -ge $deadline ]; then
			printf '%s\n' "$out" >&2
			return $status
		fi
		echo "test-deps: waiting for another apt-get or dpkg to finish..."
		sleep 5
	done
}

if [ ${#need_apt[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "test-deps: installing ${need_apt[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt_get update -qq
		apt_get install -y -qq --no-install-recommends "${need_apt[@]}"
		# Debian starts nginx on install; the tests start their own.
		if [ -x /usr/sbin/nginx ]; then nginx -s stop >/dev/null 2>&1 || true; fi
	else
		echo "test-deps: missing ${need_apt[*]} (run as root, or: sudo apt-get install ${need_apt[*]})" >&2
	fi
fi

# go_tool NAME PACKAGE VERSION builds PACKAGE@VERSION into GOPATH/bin unless
# that version is there already.
gobin="$(go env GOPATH)/bin"
go_tool() {
	local name=$1 pkg=$2 version=$3
	local built=""
	if [ -x "$gobin/$name" ]; then built=$(go version -m "$gobin/$name" 2>/dev/null || true); fi
	if grep -q "[[:space:]]$version[[:space:]]" <<<"$built"; then
		return 0
	fi
	echo "test-deps: building $name $version"
	GOBIN="$gobin" go install "$pkg@$version"
}
go_tool pebble github.com/letsencrypt/pebble/v2/cmd/pebble "$pebble_version"
go_tool pebble-challtestsrv github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv "$pebble_version"
go_tool staticcheck honnef.co/go/tools/cmd/staticcheck "$staticcheck_version"
go_tool deadcode golang.org/x/tools/cmd/deadcode "$deadcode_version"

#!/usr/bin/env bash
# Installs what the tests drive for real, when it is missing: OpenSSH's
# sshd, uWSGI with its Python 3 plugin, nginx (for the proxy benchmark),
# python3-venv, and the ACME test server pebble. Needs root for apt-get;
# without root it only reports what is missing.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
have ssh || need_apt+=(openssh-client)
have ssh-keygen || need_apt+=(openssh-client)
have git || need_apt+=(git)
have uwsgi || need_apt+=(uwsgi)
[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || need_apt+=(uwsgi-plugin-python3)
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
have python3 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
have npm || need_apt+=(npm)
have ps || need_apt+=(procps)

if [ ${#need_apt[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "test-deps: installing ${need_apt[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
		# Debian starts nginx on install; the tests start their own.
		if [ -x /usr/sbin/nginx ]; then nginx -s stop >/dev/null 2>&1 || true; fi
	else
		echo "test-deps: missing ${need_apt[*]} (run as root, or: sudo apt-get install ${need_apt[*]})" >&2
	fi
fi

gobin="$(go env GOPATH)/bin"
if [ ! -x "$gobin/pebble" ] || [ ! -x "$gobin/pebble-challtestsrv" ]; then
	echo "test-deps: installing pebble and pebble-challtestsrv"
	go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1
	go install github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.1
fi
if [ ! -x "$gobin/staticcheck" ]; then
	echo "test-deps: installing staticcheck"
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
if [ ! -x "$gobin/deadcode" ]; then
	echo "test-deps: installing deadcode"
	go install golang.org/x/tools/cmd/deadcode@v0.39.0
fi

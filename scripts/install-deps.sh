#!/usr/bin/env bash
# Installs the servers the test suite starts for itself (redis-server, and
# PostgreSQL's initdb/pg_ctl) when they are missing. Needs root or sudo on a
# Debian/Ubuntu machine; elsewhere it prints what to install.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
	need+=(postgresql)
fi
# The client-interop tests run the documented shell and Python clients.
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The forward-auth example runs in a real nginx (auth_request).
command -v nginx >/dev/null 2>&1 || need+=(nginx)
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
echo "installing: ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
		echo "install ${need[*]} (apt-get install -y ${need[*]}) and re-run" >&2
		exit 1
	fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "no apt-get here: install ${need[*]} with your package manager and re-run" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The test suite starts private instances of these servers on free loopback
# ports in temporary directories; the packaged services are not wanted. A
# policy-rc.d present only for this install keeps the packages from starting
# them; services the machine already runs are left as they are.
policy=/usr/sbin/policy-rc.d
placed=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
	placed=1
fi
cleanup() { if [ -n "$placed" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${need[@]}" >/dev/null
echo "installed: ${need[*]}; none of their packaged services was started (the tests start private instances of their own). Whether those services start at boot is left as the packages set it."

#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian/Ubuntu machine with Go: installs
# what the tests need (redis-server, which the tests start themselves on free
# loopback ports; a C compiler, which -race needs; Node.js and Chromium for the
# WebCrypto and browser tests), then runs every package's tests with the race
# detector. .ci/run runs exactly this script.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The race detector needs cgo, hence a C compiler and the C library headers.
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
# helpers/ecdh checks its format against WebCrypto in Node.js;
# server/encryption runs the browser client in headless Chromium.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)

if ((${#missing[@]} > 0)); then
	sudo=()
	if [[ "$(id -u)" -ne 0 ]]; then
		sudo=(sudo)
	fi
	echo "scripts/test.sh: installing ${missing[*]}" >&2
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Other systems read every connection with a goroutine of its own (the
# epoll read side is Linux only): everything, tests included, must build and
# vet for macOS and Windows.
for goos in darwin windows; do
	echo "scripts/test.sh: go vet ./... for $goos/amd64" >&2
	GOOS=$goos GOARCH=amd64 CGO_ENABLED=0 go vet ./...
done

export CGO_ENABLED=1
go test -race -count=1 -timeout 15m ./...

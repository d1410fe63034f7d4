#!/usr/bin/env bash
# certs.sh [ensure|renew|path] — a private test CA and the TLS files the local
# Kafka broker and ClickHouse server (scripts/kafka.sh, scripts/clickhouse.sh)
# and the security tests (e2e/security_test.go) use.
#
# Everything is generated on this machine with openssl and lives in
# ${USAGE_ROLLUP_RUN_DIR:-<repo>/.run}/certs; nothing here is a committed
# secret. Files (PEM, keys unencrypted PKCS#8, mode 0600):
#   ca.pem, ca.key             self-signed CA
#   server.pem, server.key     server certificate for 127.0.0.1 and localhost
#                              (subjectAltName), signed by the CA
#   server-keystore.pem        server.key + server.pem + ca.pem: Kafka's PEM
#                              keystore (ssl.keystore.type=PEM) in one file
#   client.pem, client.key     client certificate (CN=usage-rollup) for mTLS
#
# `ensure` (the default) is idempotent: it keeps valid files and regenerates
# the whole set when a file is missing, the chain does not verify or a
# certificate expires within 30 days. The servers notice regenerated files
# through their config hash and restart on their next `start`.
# `renew` regenerates unconditionally; `path` prints the directory.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run_dir="$(realpath -m "${USAGE_ROLLUP_RUN_DIR:-$repo/.run}")"
dir="$run_dir/certs"
# days is the validity of every certificate: long enough that a developer
# machine never sees one expire, and `ensure` renews 30 days before anyway.
days=3650
# renew_before is how many seconds before expiry `ensure` regenerates.
renew_before=$((30 * 24 * 3600))

log() { printf 'certs.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

install_openssl() {
	command -v openssl >/dev/null 2>&1 && return 0
	log "installing openssl with apt-get"
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl >&2 ||
		die "apt-get could not install openssl; install it by hand and re-run"
}

# valid succeeds if the set in $dir is complete, verifies against its CA and
# does not expire soon.
valid() {
	local f
	for f in ca.pem ca.key server.pem server.key server-keystore.pem client.pem client.key; do
		[[ -s $dir/$f ]] || return 1
	done
	openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem" "$dir/client.pem" >/dev/null 2>&1 || return 1
	for f in ca.pem server.pem client.pem; do
		openssl x509 -noout -checkend "$renew_before" -in "$dir/$f" >/dev/null 2>&1 || return 1
	done
}

# issue signs a new key's certificate with the CA in $1 (a directory).
#   issue DIR NAME SUBJECT EXTENSIONS
issue() {
	local d="$1" name="$2" subj="$3" ext="$4"
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/$name.key" 2>/dev/null
	openssl req -new -key "$d/$name.key" -subj "$subj" -out "$d/$name.csr"
	printf '%s\n' "$ext" >"$d/$name.ext"
	openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days "$days" -sha256 -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null
	rm -f "$d/$name.csr" "$d/$name.ext"
}

# generate builds a complete set in a temp dir and swaps it in, so a reader
# never sees a CA from one run next to a server certificate from another.
generate() {
	local tmp="$dir.tmp"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(
		umask 077
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/ca.key" 2>/dev/null
		openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days "$days" \
			-subj "/CN=usage-rollup test CA $(date -u +%Y%m%dT%H%M%SZ)" \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
			-out "$tmp/ca.pem"
		issue "$tmp" server "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
		issue "$tmp" client "/CN=usage-rollup" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
		cat "$tmp/server.key" "$tmp/server.pem" "$tmp/ca.pem" >"$tmp/server-keystore.pem"
		rm -f "$tmp/ca.srl"
	)
	rm -rf "$dir"
	mv "$tmp" "$dir"
	log "generated a test CA, server and client certificates in $dir"
}

ensure() {
	install_openssl
	mkdir -p "$run_dir"
	# kafka.sh and clickhouse.sh may both call this at once.
	exec 8>"$run_dir/.certs.lock"
	flock 8
	if [[ ${1:-} == renew ]] || ! valid; then
		generate
	fi
}

case "${1:-ensure}" in
ensure) ensure ;;
renew) ensure renew ;;
path) echo "$dir" ;;
*)
	echo "usage: $0 ensure|renew|path" >&2
	exit 2
	;;
esac

#!/usr/bin/env bash
# clickhouse.sh start|stop|status|client — a private ClickHouse server for
# development and the tests of the ClickHouse packages (internal/chconn,
# schema, sink, audit).
#
# The server runs as a plain background process (not systemd) with its own
# config, data, logs and pid file under ${USAGE_ROLLUP_RUN_DIR:-<repo>/.run}/clickhouse,
# listening only on 127.0.0.1. It installs clickhouse-server and
# clickhouse-client with apt-get when they are missing. Every command is
# idempotent: start on a running server and stop on a stopped one succeed;
# start restarts a server whose configuration (ports, certificates, users)
# changed since it started.
#
# Besides the plain native port, the server speaks the native protocol over
# TLS on CLICKHOUSE_SECURE_PORT with the certificates of scripts/certs.sh
# (<run>/certs: clients trust ca.pem; a client certificate is optional but must
# verify if presented), and has a user `secure_user` whose generated test
# password is in <run>/clickhouse/secrets/secure_user.password (for the
# security tests; `default` keeps its empty password).
#
# Environment:
#   USAGE_ROLLUP_RUN_DIR    run directory (default: <repo>/.run)
#   CLICKHOUSE_PORT         native protocol port (default: 9000)
#   CLICKHOUSE_HTTP_PORT    HTTP port (default: 8123)
#   CLICKHOUSE_SECURE_PORT  native protocol over TLS (default: 9440)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_root=$(realpath -m "${USAGE_ROLLUP_RUN_DIR:-$repo/.run}")
run_dir=$run_root/clickhouse
certs=$run_root/certs
secrets=$run_dir/secrets
port=${CLICKHOUSE_PORT:-9000}
http_port=${CLICKHOUSE_HTTP_PORT:-8123}
secure_port=${CLICKHOUSE_SECURE_PORT:-9440}
secure_user=secure_user
# config_hash_file holds the hash of the configuration the running server
# started with; staged is where start renders the wanted one to compare.
config_hash_file=$run_dir/config.sha256
staged=$run_dir/staged
pid_file=$run_dir/clickhouse-server.pid
log_file=$run_dir/log/clickhouse-server.log
err_file=$run_dir/log/clickhouse-server.err.log
stdout_file=$run_dir/log/stdout.log
config=$run_dir/config.xml

# start_timeout is how long start waits for `SELECT 1` to succeed; a cold
# server on a small VM needs a few seconds to load system tables.
start_timeout="${CLICKHOUSE_START_TIMEOUT:-180}" # loading many tables at start-up takes a while
# stop_timeout is how long stop waits after SIGTERM before SIGKILL; ClickHouse
# finishes in-flight merges and flushes logs on SIGTERM.
stop_timeout=30

die() { echo "clickhouse.sh: $*" >&2; exit 1; }

server_bin() {
	# Debian ships /usr/sbin/clickhouse-server, which is not on a non-root PATH;
	# the upstream packages ship /usr/bin/clickhouse-server.
	local b
	for b in "$(command -v clickhouse-server 2>/dev/null || true)" /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
		if [[ -n $b && -x $b ]]; then echo "$b"; return 0; fi
	done
	return 1
}

client() { clickhouse-client --host 127.0.0.1 --port "$port" "$@"; }

install_if_missing() {
	if server_bin >/dev/null && command -v clickhouse-client >/dev/null; then
		return 0
	fi
	echo "clickhouse.sh: installing clickhouse-server and clickhouse-client with apt-get"
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
		! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			clickhouse-server clickhouse-client; then
		die "apt-get could not install clickhouse-server/clickhouse-client; install them by hand (https://clickhouse.com/docs/install) and re-run"
	fi
	server_bin >/dev/null || die "clickhouse-server not found after installing it"
}

# running prints the pid and succeeds if the pid file names a live server of ours.
running() {
	[[ -f $pid_file ]] || return 1
	local pid
	pid=$(<"$pid_file")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid: the process must be a server using our config.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$config" || return 1
	echo "$pid"
}

# ensure_secrets generates the secure_user test password once; it is a local
# test credential, never committed.
ensure_secrets() {
	[[ -s $secrets/$secure_user.password ]] && return 0
	(
		umask 077
		mkdir -p "$secrets"
		openssl rand -hex 16 >"$secrets/$secure_user.password.tmp"
		mv "$secrets/$secure_user.password.tmp" "$secrets/$secure_user.password"
	)
}

# local_user prints the users.xml entry of user $1, who signs in with the
# password element $2, from this machine only.
local_user() {
	cat <<EOF
        <$1>
            $2
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </$1>
EOF
}

# write_config renders config.xml and users.xml into $staged; install_config
# moves them into place. The files name their final paths.
write_config() {
	mkdir -p "$run_dir"/{data,tmp,user_files,format_schemas,log} "$staged"
	local pw_sha256
	pw_sha256=$(tr -d '\n' <"$secrets/$secure_user.password" | sha256sum | cut -d' ' -f1)
	# Standalone config rather than including /etc/clickhouse-server: the Debian
	# config listens on localhost ports we must override, writes to /var/log
	# and /var/lib (root-owned), and opens the default user to ::/0. <yandex> is
	# the root element 18.x requires; current releases still accept it.
	cat >"$staged/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>$log_file</log>
        <errorlog>$err_file</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$port</tcp_port>
    <http_port>$http_port</http_port>
    <!-- Native protocol over TLS. verificationMode relaxed requests a client
         certificate and rejects one that does not verify against caConfig,
         but admits clients without one (strict would require it). -->
    <tcp_port_secure>$secure_port</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>$certs/server.pem</certificateFile>
            <privateKeyFile>$certs/server.key</privateKeyFile>
            <caConfig>$certs/ca.pem</caConfig>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <verificationMode>relaxed</verificationMode>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
            <invalidCertificateHandler>
                <name>RejectCertificateHandler</name>
            </invalidCertificateHandler>
        </server>
    </openSSL>
    <path>$run_dir/data/</path>
    <tmp_path>$run_dir/tmp/</tmp_path>
    <user_files_path>$run_dir/user_files/</user_files_path>
    <format_schema_path>$run_dir/format_schemas/</format_schema_path>
    <users_config>$run_dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>1024</max_connections>
    <max_concurrent_queries>100</max_concurrent_queries>
    <keep_alive_timeout>3</keep_alive_timeout>
    <!-- Small caches: this is a development server on a small VM. -->
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <!-- Tests drop their databases; never refuse because a table grew large. -->
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
	cat >"$staged/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
$(local_user default "<password></password>")
        <!-- Password-protected user for the security tests (TLS port). -->
$(local_user "$secure_user" "<password_sha256_hex>$pw_sha256</password_sha256_hex>")
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

# staged_hash covers what the server reads at start: its config, users and
# the TLS files.
staged_hash() {
	cat "$staged/config.xml" "$staged/users.xml" "$certs/server.pem" "$certs/server.key" "$certs/ca.pem" |
		sha256sum | cut -d' ' -f1
}

install_config() {
	mv "$staged/config.xml" "$config"
	mv "$staged/users.xml" "$run_dir/users.xml"
	chmod 600 "$run_dir/users.xml"
	rmdir "$staged"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log_tail() {
	local f
	for f in "$stdout_file" "$err_file" "$log_file"; do
		if [[ -s $f ]]; then
			echo "--- tail of $f" >&2
			tail -n 30 "$f" >&2
		fi
	done
}

start() {
	mkdir -p "$run_dir"
	# Serialize concurrent starts: the config comparison and restart must not
	# interleave.
	exec 9>"$run_dir/.lock"
	flock 9
	"$repo/scripts/certs.sh" ensure
	ensure_secrets
	write_config
	local pid hash
	hash=$(staged_hash)
	if pid=$(running); then
		if [[ -f $config_hash_file && $hash == "$(<"$config_hash_file")" ]]; then
			rm -rf "$staged"
			echo "clickhouse.sh: already running (pid $pid, port $port, secure port $secure_port)"
			return 0
		fi
		echo "clickhouse.sh: configuration changed since the server (pid $pid) started; restarting it"
		stop
	fi
	install_if_missing
	command -v clickhouse-client >/dev/null || die "clickhouse-client not found"
	if client -q 'SELECT 1' >/dev/null 2>&1; then
		die "another ClickHouse server already answers on 127.0.0.1:$port; stop it or set CLICKHOUSE_PORT"
	fi
	if port_open "$secure_port"; then
		die "port 127.0.0.1:$secure_port is in use by another process; set CLICKHOUSE_SECURE_PORT"
	fi
	install_config
	echo "$hash" >"$config_hash_file"
	local bin
	bin=$(server_bin)
	# setsid detaches the server from this shell's process group so that a
	# Ctrl-C in the terminal that ran start does not stop it.
	(
		cd "$run_dir"
		setsid nohup "$bin" --config-file="$config" >"$stdout_file" 2>&1 </dev/null 9>&- &
		echo $! >"$pid_file"
	)
	pid=$(<"$pid_file")
	local deadline=$((SECONDS + start_timeout))
	until client -q 'SELECT 1' >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log_tail
			rm -f "$pid_file"
			die "clickhouse-server exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			log_tail
			die "clickhouse-server did not answer SELECT 1 on 127.0.0.1:$port within ${start_timeout}s (pid $pid still running; run '$0 stop')"
		fi
		sleep 0.5
	done
	echo "clickhouse.sh: started $(client -q 'SELECT version()') (pid $pid) on 127.0.0.1:$port (TLS $secure_port), data in $run_dir"
}

stop() {
	local pid
	if ! pid=$(running); then
		rm -f "$pid_file"
		echo "clickhouse.sh: not running"
		return 0
	fi
	kill -TERM "$pid"
	local deadline=$((SECONDS + stop_timeout))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			echo "clickhouse.sh: pid $pid ignored SIGTERM for ${stop_timeout}s; sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.5
	done
	rm -f "$pid_file"
	echo "clickhouse.sh: stopped (pid $pid)"
}

status() {
	local pid
	if pid=$(running) && client -q 'SELECT 1' >/dev/null 2>&1; then
		echo "clickhouse.sh: running $(client -q 'SELECT version()') (pid $pid) on 127.0.0.1:$port"
		return 0
	elif [[ -n ${pid:-} ]]; then
		echo "clickhouse.sh: pid $pid is running but does not answer on 127.0.0.1:$port"
		return 1
	fi
	echo "clickhouse.sh: not running"
	return 3
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
client) shift; client "$@" ;;
*) echo "usage: $0 start|stop|status|client [clickhouse-client args]" >&2; exit 2 ;;
esac

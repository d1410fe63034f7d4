#!/usr/bin/env bash
# clickhouse.sh start|stop|status|client — a private ClickHouse server for
# development and the internal/sink tests.
#
# The server runs as a plain background process (not systemd) with its own
# config, data, logs and pid file under ${USAGE_ROLLUP_RUN_DIR:-<repo>/.run}/clickhouse,
# listening only on 127.0.0.1. It installs clickhouse-server and
# clickhouse-client with apt-get when they are missing. Every command is
# idempotent: start on a running server and stop on a stopped one succeed.
#
# Environment:
#   USAGE_ROLLUP_RUN_DIR  run directory (default: <repo>/.run)
#   CLICKHOUSE_PORT       native protocol port (default: 9000)
#   CLICKHOUSE_HTTP_PORT  HTTP port (default: 8123)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir=${USAGE_ROLLUP_RUN_DIR:-$repo/.run}/clickhouse
port=${CLICKHOUSE_PORT:-9000}
http_port=${CLICKHOUSE_HTTP_PORT:-8123}
pid_file=$run_dir/clickhouse-server.pid
log_file=$run_dir/log/clickhouse-server.log
err_file=$run_dir/log/clickhouse-server.err.log
stdout_file=$run_dir/log/stdout.log
config=$run_dir/config.xml

# start_timeout is how long start waits for `SELECT 1` to succeed; a cold
# server on a small VM needs a few seconds to load system tables.
start_timeout=60
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

write_config() {
	mkdir -p "$run_dir"/{data,tmp,user_files,format_schemas,log}
	# Standalone config rather than including /etc/clickhouse-server: the Debian
	# config listens on localhost ports we must override, writes to /var/log
	# and /var/lib (root-owned), and opens the default user to ::/0. <yandex> is
	# the root element 18.x requires; current releases still accept it.
	cat >"$config" <<EOF
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
	cat >"$run_dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
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
	local pid
	if pid=$(running); then
		echo "clickhouse.sh: already running (pid $pid, port $port)"
		return 0
	fi
	install_if_missing
	command -v clickhouse-client >/dev/null || die "clickhouse-client not found"
	if client -q 'SELECT 1' >/dev/null 2>&1; then
		die "another ClickHouse server already answers on 127.0.0.1:$port; stop it or set CLICKHOUSE_PORT"
	fi
	write_config
	local bin
	bin=$(server_bin)
	# setsid detaches the server from this shell's process group so that a
	# Ctrl-C in the terminal that ran start does not stop it.
	(
		cd "$run_dir"
		setsid nohup "$bin" --config-file="$config" >"$stdout_file" 2>&1 </dev/null &
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
	echo "clickhouse.sh: started $(client -q 'SELECT version()') (pid $pid) on 127.0.0.1:$port, data in $run_dir"
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

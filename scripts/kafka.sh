#!/usr/bin/env bash
# kafka.sh start|stop|status|logs — a local single-node Apache Kafka 4.x (KRaft,
# combined broker+controller) for development and integration tests.
#
# The broker comes from Maven Central jars (scripts/kafka/pom.xml), fetched once
# with `mvn dependency:copy-dependencies`, and runs straight from the JDK: no
# tarball, no Docker. It listens on loopback only.
#
# Environment:
#   USAGE_ROLLUP_RUN_DIR   state root (default: <repo>/.run); broker state in $RUN_DIR/kafka
#   KAFKA_PORT             client listener port (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093). It is recorded in the
#                          formatted metadata log: changing it needs `kafka.sh reset`.
#   KAFKA_PROXIED_PORT     PLAINTEXT listener PROXIED binds (default 9094); it is
#   KAFKA_PROXIED_ADVERTISED_PORT  advertised as this port (default 9095), where a
#                          fault-injection proxy forwarding to KAFKA_PROXIED_PORT
#                          listens. Without the proxy its clients fail, by design.
#   KAFKA_SASL_PORT        SASL_PLAINTEXT listener (default 9096)
#   KAFKA_SSL_PORT         SSL listener, client certificate requested (default 9097)
#   KAFKA_SASL_SSL_PORT    SASL_SSL listener (default 9098)
#   KAFKA_HEAP             JVM heap (default 512m)
#   KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#
# Security listeners (loopback only, for the security tests): SASL mechanisms
# PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for user `usage`, whose generated test
# password is in $RUN_DIR/kafka/secrets/usage.password; TLS files come from
# scripts/certs.sh ($RUN_DIR/certs, CA ca.pem, client certificate client.pem).
# The broker talks to itself over PLAINTEXT and the controller listener.
#
# All commands are idempotent: `start` on a running broker only re-checks readiness,
# unless its configuration (listeners, certificates, passwords) changed since it
# started: then `start` restarts it. `stop` on a stopped one succeeds.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pom="$repo/scripts/kafka/pom.xml"
run_dir="$(realpath -m "${USAGE_ROLLUP_RUN_DIR:-$repo/.run}")"
kdir="$run_dir/kafka"
libs="$kdir/libs"
data="$kdir/data"
logs="$kdir/logs"
conf="$kdir/config"
pidfile="$kdir/kafka.pid"
port="${KAFKA_PORT:-9092}"
cport="${KAFKA_CONTROLLER_PORT:-9093}"
proxied_port="${KAFKA_PROXIED_PORT:-9094}"
proxied_adv_port="${KAFKA_PROXIED_ADVERTISED_PORT:-9095}"
sasl_port="${KAFKA_SASL_PORT:-9096}"
ssl_port="${KAFKA_SSL_PORT:-9097}"
sasl_ssl_port="${KAFKA_SASL_SSL_PORT:-9098}"
certs="$run_dir/certs"
secrets="$kdir/secrets"
sasl_user=usage
# config_hash_file records the hash of the configuration the running broker was
# started with, so that `start` can tell a stale broker from a current one.
config_hash_file="$kdir/config.sha256"
# scram_marker records for which cluster and password the SCRAM users exist.
scram_marker="$kdir/scram.sha256"
heap="${KAFKA_HEAP:-512m}"
timeout="${KAFKA_START_TIMEOUT:-90}"
host=127.0.0.1

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH: $2"
}

# pid prints the broker pid if the pid file names a live Kafka JVM.
pid() {
	[[ -f $pidfile ]] || return 1
	local p
	p="$(<"$pidfile")"
	[[ $p =~ ^[0-9]+$ ]] || return 1
	kill -0 "$p" 2>/dev/null || return 1
	# Guard against pid reuse: the process must be our broker.
	tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
	echo "$p"
}

port_open() {
	(exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
}

# ready succeeds once the broker answers a metadata request (not just accepts TCP:
# the socket opens a few hundred ms before the broker has caught up with the
# metadata log and can serve clients).
ready() {
	if command -v kcat >/dev/null 2>&1; then
		kcat -b "$host:$port" -L -m 3 >/dev/null 2>&1
	else
		port_open "$port"
	fi
}

# fetch_libs copies the broker jars once. It downloads into a temp dir and renames,
# so an interrupted download never leaves a half-filled libs dir that looks done.
fetch_libs() {
	[[ -f $libs/.complete ]] && return 0
	need mvn "install Maven (apt-get install maven) to fetch the Kafka jars"
	log "fetching Kafka jars into $libs (mvn, first run only)"
	local tmp="$kdir/libs.tmp"
	rm -rf "$tmp"
	# Output goes to a file: even with -q -B, Maven writes stray ANSI resets.
	mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$tmp" >"$kdir/mvn.log" 2>&1 ||
		{ tail -n 40 "$kdir/mvn.log" >&2; die "mvn dependency:copy-dependencies failed (log: $kdir/mvn.log)"; }
	touch "$tmp/.complete"
	rm -rf "$libs"
	mv "$tmp" "$libs"
}

# ensure_secrets generates the SASL test password once. It is a local test
# credential, never committed; `kafka.sh reset` keeps it.
ensure_secrets() {
	[[ -s $secrets/$sasl_user.password ]] && return 0
	(
		umask 077
		mkdir -p "$secrets"
		openssl rand -hex 16 >"$secrets/$sasl_user.password.tmp"
		mv "$secrets/$sasl_user.password.tmp" "$secrets/$sasl_user.password"
	)
}

sasl_password() { tr -d '\n' <"$secrets/$sasl_user.password"; }

write_config() {
	mkdir -p "$conf" "$logs" "$data"
	local pw plain_jaas scram_jaas l m
	pw="$(sasl_password)"
	plain_jaas="org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_user=\"$pw\";"
	scram_jaas="org.apache.kafka.common.security.scram.ScramLoginModule required;"
	# The file holds the PLAIN test password.
	(umask 077 && : >"$conf/server.properties")
	cat >"$conf/server.properties" <<EOF
# Generated by scripts/kafka.sh; edits are overwritten on start.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$host:$cport
# PROXIED is advertised on another port than it binds: a fault-injection proxy
# on $proxied_adv_port forwards to $proxied_port, so its clients' traffic passes the proxy.
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$cport,PROXIED://$host:$proxied_port,SASL_PLAINTEXT://$host:$sasl_port,SSL://$host:$ssl_port,SASL_SSL://$host:$sasl_ssl_port
advertised.listeners=PLAINTEXT://$host:$port,PROXIED://$host:$proxied_adv_port,SASL_PLAINTEXT://$host:$sasl_port,SSL://$host:$ssl_port,SASL_SSL://$host:$sasl_ssl_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL
# SASL: PLAIN users are listed in the JAAS line; SCRAM users live in the
# metadata log (added at format time, or by ensure_scram for older data).
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
EOF
	for l in sasl_plaintext sasl_ssl; do
		printf 'listener.name.%s.plain.sasl.jaas.config=%s\n' "$l" "$plain_jaas"
		for m in scram-sha-256 scram-sha-512; do
			printf 'listener.name.%s.%s.sasl.jaas.config=%s\n' "$l" "$m" "$scram_jaas"
		done
	done >>"$conf/server.properties"
	cat >>"$conf/server.properties" <<EOF
# TLS from scripts/certs.sh, PEM files (no JKS/keytool): the keystore file holds
# the unencrypted PKCS#8 key and the certificate chain.
ssl.keystore.type=PEM
ssl.keystore.location=$certs/server-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$certs/ca.pem
ssl.enabled.protocols=TLSv1.3,TLSv1.2
# The SSL listener asks for a client certificate (mTLS) but admits clients
# without one; a certificate that does not verify against the CA fails the
# handshake.
listener.name.ssl.ssl.client.auth=requested
log.dirs=$data
# Tests create their topics explicitly; auto-creation stays on for ad-hoc use.
auto.create.topics.enable=true
num.partitions=4
# One broker: every internal topic must have replication factor 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# The default 50 offsets partitions take seconds to create on a 2-core machine at
# the first group join; 8 is plenty for one developer broker.
offsets.topic.num.partitions=8
# Consumer groups in tests should not sit out the default 3s join delay.
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
	cat >"$conf/log4j2.properties" <<EOF
# Generated by scripts/kafka.sh. Broker log to file; warnings also to stdout
# (captured in kafka.out).
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $logs/server.log
appender.file.filePattern = $logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = warn
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
rootLogger.appenderRef.console.ref = console
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = info
EOF
}

java_opts() {
	# Same GC settings as bin/kafka-server-start.sh / kafka-run-class.sh.
	printf '%s\n' "-Xmx$heap" "-Xms$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
		-Djava.awt.headless=true "-Dkafka.logs.dir=$logs" \
		"-Dlog4j2.configurationFile=$conf/log4j2.properties"
}

# format writes meta.properties and the bootstrap metadata once per data dir.
format() {
	[[ -f $data/meta.properties ]] && return 0
	# A Kafka cluster id is 16 random bytes, base64url without padding (what
	# `kafka-storage.sh random-uuid` prints), made here to skip a JVM start.
	local id
	id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
	log "formatting $data (cluster id $id)"
	local -a opts
	mapfile -t opts < <(java_opts)
	local pw
	pw="$(sasl_password)"
	java "${opts[@]/#-Xms*/-Xms64m}" -cp "$libs/*" kafka.tools.StorageTool format \
		-t "$id" -c "$conf/server.properties" --standalone \
		--add-scram "SCRAM-SHA-256=[name=$sasl_user,password=$pw]" \
		--add-scram "SCRAM-SHA-512=[name=$sasl_user,password=$pw]" >"$logs/format.out" 2>&1 ||
		{ cat "$logs/format.out" >&2; die "kafka-storage format failed"; }
	scram_state >"$scram_marker"
}

# scram_state identifies the SCRAM users a formatted data dir should hold: its
# cluster id and the password's hash.
scram_state() {
	local id
	id="$(sed -n 's/^cluster\.id=//p' "$data/meta.properties" 2>/dev/null)"
	printf '%s %s\n' "$id" "$(sasl_password | sha256sum | cut -d' ' -f1)"
}

# ensure_scram adds the SCRAM users to a running broker whose data dir was
# formatted without them (before this script created them) or with another
# password. It upserts, so running it twice is harmless.
ensure_scram() {
	[[ -f $scram_marker && "$(<"$scram_marker")" == "$(scram_state)" ]] && return 0
	log "adding SCRAM users ($sasl_user) to the running broker"
	local pw
	pw="$(sasl_password)"
	local -a opts
	mapfile -t opts < <(java_opts)
	local m
	# One mechanism per call: the broker refuses to alter one user's
	# credentials twice in a request (DuplicateResourceException).
	for m in SCRAM-SHA-256 SCRAM-SHA-512; do
		java "${opts[@]/#-Xm[sx]*/-Xmx256m}" -cp "$libs/*" kafka.admin.ConfigCommand \
			--bootstrap-server "$host:$port" --alter --entity-type users --entity-name "$sasl_user" \
			--add-config "$m=[password=$pw]" >"$logs/scram.out" 2>&1 ||
			{ cat "$logs/scram.out" >&2; die "adding $m user $sasl_user failed"; }
	done
	scram_state >"$scram_marker"
}

# config_hash covers everything the broker reads only at start: its properties
# (listeners, JAAS passwords) and the TLS files.
config_hash() {
	cat "$conf/server.properties" "$certs/server-keystore.pem" "$certs/ca.pem" | sha256sum | cut -d' ' -f1
}

wait_ready() {
	local p="$1" deadline=$((SECONDS + timeout))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$p" 2>/dev/null; then
			log "broker exited during startup; last log lines:"
			tail -n 40 "$logs/server.log" "$logs/kafka.out" >&2 2>/dev/null || true
			rm -f "$pidfile"
			exit 1
		fi
		ready && return 0
		sleep 0.5
	done
	log "broker not ready on $host:$port after ${timeout}s; last log lines:"
	tail -n 40 "$logs/server.log" "$logs/kafka.out" >&2 2>/dev/null || true
	exit 1
}

start() {
	need java "install a JDK 17+ (apt-get install openjdk-17-jre-headless)"
	mkdir -p "$kdir"
	# Serialize concurrent starts (parallel test runs) on one lock.
	exec 9>"$kdir/.lock"
	flock 9
	"$repo/scripts/certs.sh" ensure
	need openssl "scripts/certs.sh installs it"
	ensure_secrets
	local p
	if p="$(pid)"; then
		# Rewriting the file is harmless: the broker read it when it started.
		write_config
		if [[ -f $config_hash_file && "$(config_hash)" == "$(<"$config_hash_file")" ]]; then
			wait_ready "$p"
			fetch_libs
			ensure_scram
			log "already running (pid $p) on $host:$port"
			return 0
		fi
		log "configuration changed since the broker (pid $p) started; restarting it"
		stop
	fi
	rm -f "$pidfile"
	if port_open "$port"; then
		die "port $host:$port is in use by another process (not our broker); set KAFKA_PORT"
	fi
	if port_open "$cport"; then
		die "controller port $host:$cport is in use; set KAFKA_CONTROLLER_PORT (then: kafka.sh reset)"
	fi
	local v
	for v in KAFKA_PROXIED_PORT:$proxied_port KAFKA_SASL_PORT:$sasl_port KAFKA_SSL_PORT:$ssl_port KAFKA_SASL_SSL_PORT:$sasl_ssl_port; do
		if port_open "${v#*:}"; then
			die "port $host:${v#*:} is in use by another process; set ${v%%:*}"
		fi
	done
	local t0=$SECONDS
	fetch_libs
	write_config
	format
	config_hash >"$config_hash_file"
	local -a opts
	mapfile -t opts < <(java_opts)
	# setsid detaches the JVM from this shell's process group, so the broker keeps
	# running after the caller's terminal or job is gone. The lock fd is not inherited.
	setsid java "${opts[@]}" -cp "$libs/*" kafka.Kafka "$conf/server.properties" \
		>>"$logs/kafka.out" 2>&1 9>&- </dev/null &
	p=$!
	echo "$p" >"$pidfile"
	wait_ready "$p"
	ensure_scram
	log "started (pid $p) on $host:$port (PROXIED $proxied_port advertised as $proxied_adv_port, SASL_PLAINTEXT $sasl_port, SSL $ssl_port, SASL_SSL $sasl_ssl_port) in $((SECONDS - t0))s; logs in $logs"
}

stop() {
	local p
	if ! p="$(pid)"; then
		rm -f "$pidfile"
		log "not running"
		return 0
	fi
	kill -TERM "$p"
	# A controlled shutdown normally takes a few seconds; KILL after 30s.
	local i
	for ((i = 0; i < 60; i++)); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$p" 2>/dev/null; then
		log "pid $p still alive after 30s; sending KILL"
		kill -KILL "$p" 2>/dev/null || true
		while kill -0 "$p" 2>/dev/null; do sleep 0.2; done
	fi
	rm -f "$pidfile"
	log "stopped (pid $p)"
}

status() {
	local p
	if p="$(pid)"; then
		if ready; then
			echo "running (pid $p) on $host:$port, ready"
		else
			echo "running (pid $p) on $host:$port, not ready"
			return 1
		fi
	else
		echo "not running"
		return 3
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
restart) stop && start ;;
logs) tail -n "${2:-100}" "$logs/server.log" ;;
# reset deletes broker data (topics, offsets) but keeps the downloaded jars.
reset) stop && rm -rf "$data" "$conf" "$config_hash_file" "$scram_marker" && log "data removed" ;;
*)
	echo "usage: $0 start|stop|status|restart|logs [N]|reset" >&2
	exit 2
	;;
esac

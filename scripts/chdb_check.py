#!/usr/bin/env python3
"""Check the rendered ClickHouse migrations against a current ClickHouse.

chDB (pip install chdb) embeds a current ClickHouse engine in-process, so the
schema can be checked on a modern server without running one. The Go test
internal/schema.TestMigrationsOnModernClickHouse drives this script:

    chdb_check.py version      print the embedded ClickHouse version
    chdb_check.py run DIR      apply DIR/migrations.json and check the views

migrations.json is written by the Go test from schema.RenderMigrations:

    {"database": "...", "dimension": "LowCardinality(String)",
     "windows": ["1m", "1h"],
     "migrations": [{"version": 1, "name": "...", "statements": ["..."]}]}

The check applies every statement twice (idempotency), inserts rows including
superseded versions of the same group, and asserts that sum() over the FINAL
views is exact before any merge. Exit status 0 means all checks passed.
"""

import sys

import chdb_temp


class Check:
    def __init__(self, sess, database):
        self.sess = sess
        self.db = "`" + database + "`"
        self.failures = []

    def q(self, sql):
        return self.sess.query(sql, "TabSeparated").data().strip()

    def exec(self, sql):
        self.sess.query(sql)

    def expect(self, what, sql, want):
        got = self.q(sql)
        if got != want:
            self.failures.append(f"{what}: got {got!r}, want {want!r}\n    {sql}")


ROLLUP_COLUMNS = (
    "window_start, workspace_id, project_id, api_key_id, provider, model, endpoint, topic, `partition`, "
    "chunk, version, requests, errors, input_tokens, input_text_tokens, input_image_tokens, "
    "input_cached_tokens, output_tokens, total_tokens, latency_ms_sum, latency_ms_max, "
    "inconsistent_events, written_at"
)


def rollup_row(window_start, workspace, partition, chunk, version, requests):
    dims = f"'{workspace}', 'p1', 'k1', 'openai', 'gpt-4o', '/v1/chat/completions'"
    measures = f"{requests}, 0, {requests}, {requests}, 0, 0, {2 * requests}, {3 * requests}, {100 * requests}, 100, 0"
    return (f"(toDateTime({window_start}, 'UTC'), {dims}, 'usage-events', {partition}, {chunk}, {version}, "
            f"{measures}, now())")


def run(directory):
    # Two passes: the second must be a no-op.
    with chdb_temp.migrated(f"{directory}/migrations.json", passes=2) as (sess, version, manifest):
        c = Check(sess, manifest["database"])
        for m in manifest["migrations"]:
            c.exec(f"INSERT INTO {c.db}.schema_migrations (version, name, applied_at) "
                   f"VALUES ({m['version']}, '{m['name']}', now())")
        check(c, manifest)
    if c.failures:
        print(f"chdb_check.py: {len(c.failures)} check(s) failed on ClickHouse {version}:")
        for f in c.failures:
            print("  " + f)
        return 1
    print(f"chdb_check.py: all checks passed on ClickHouse {version} "
          f"({len(manifest['migrations'])} migrations, windows {','.join(manifest['windows'])})")
    return 0


def check(c, manifest):
    db = c.db
    t0 = 1715688000  # 2024-05-14 12:00 UTC
    dimension = manifest["dimension"]
    for w in manifest["windows"]:
        c.expect(f"dimension type of usage_rollup_{w}",
                 f"SELECT DISTINCT type FROM system.columns WHERE database = '{manifest['database']}' "
                 f"AND table = 'usage_rollup_{w}' AND name IN "
                 f"('workspace_id', 'project_id', 'api_key_id', 'provider', 'model', 'endpoint')",
                 dimension)
        c.expect(f"usage_{w} is a view",
                 f"SELECT engine FROM system.tables WHERE database = '{manifest['database']}' AND name = 'usage_{w}'",
                 "View")

    # Two versions of one group (a shorter prefix written after the longer
    # one), an identical rewrite, another chunk and another partition.
    w = manifest["windows"][0]
    rows = [
        rollup_row(t0, "w1", 3, 0, 99, 10),
        rollup_row(t0, "w1", 3, 0, 50, 4),
        rollup_row(t0, "w1", 3, 0, 99, 10),
        rollup_row(t0, "w1", 3, 1, 1500, 7),
        rollup_row(t0, "w1", 4, 0, 10, 11),
        rollup_row(t0 + 60, "w2", 3, 0, 99, 1),
    ]
    for r in rows:  # one insert each: separate parts, nothing merged yet
        c.exec(f"INSERT INTO {db}.usage_rollup_{w} ({ROLLUP_COLUMNS}) VALUES {r}")
    c.expect("raw rows (FINAL must do the work)", f"SELECT count() FROM {db}.usage_rollup_{w}", "6")
    view = f"{db}.usage_{w}"
    c.expect("sum over the view", f"SELECT count(), sum(requests), sum(total_tokens) FROM {view}", "4\t29\t87")
    c.expect("dimension filter", f"SELECT sum(requests) FROM {view} WHERE workspace_id = 'w1'", "28")
    c.expect("measure filter sees only the longest prefix",
             f"SELECT count() FROM {view} WHERE requests < 5 AND workspace_id = 'w1'", "0")
    c.expect("chunk and partition filter",
             f"SELECT sum(requests) FROM {view} WHERE `partition` = 3 AND chunk = 0", "11")
    c.expect("group by window",
             f"SELECT groupArray(s) FROM (SELECT window_start, sum(requests) AS s FROM {view} "
             f"GROUP BY window_start ORDER BY window_start)", "[28,1]")

    # Rejected: the same offset rejected again on replay a month later.
    for rejected_at in ("2024-06-01 00:00:05", "2024-07-02 00:00:00"):
        c.exec(f"INSERT INTO {db}.usage_rejected_log (topic, `partition`, `offset`, reason, field, detail, "
               f"record_time, size, payload, rejected_at) VALUES "
               f"('usage-events', 3, 5, 'invalid_json', '', 'eof', toDateTime('2024-05-31 23:59:59', 'UTC'), 1, '{{', "
               f"toDateTime('{rejected_at}', 'UTC')), "
               f"('usage-events', 3, 7, 'invalid_json', '', 'eof', toDateTime('2024-05-31 23:59:59', 'UTC'), 1, '{{', "
               f"toDateTime('{rejected_at}', 'UTC'))")
    c.expect("one row per rejected offset", f"SELECT count(), sum(size) FROM {db}.usage_rejected", "2\t2")

    # Chunk progress: a stale retry (20) arrives after the furthest write (30).
    for last in (10, 30, 20):
        c.exec(f"INSERT INTO {db}.usage_chunks (topic, `partition`, chunk, first_offset, last_offset, accepted, "
               f"rejected, duplicates, max_event_time, written_at) VALUES "
               f"('usage-events', 3, 2, 2000, {2000 + last}, {last}, 0, 1, toDateTime({t0}, 'UTC'), now())")
    c.expect("chunk progress", f"SELECT count(), max(last_offset), sum(accepted) FROM {db}.usage_chunk_progress",
             "1\t2030\t30")

    c.exec(f"INSERT INTO {db}.usage_settings (topic, chunk_size, created_at) VALUES ('usage-events', 50000, now())")
    c.expect("chunk size", f"SELECT chunk_size FROM {db}.usage_settings WHERE topic = 'usage-events' "
             f"ORDER BY created_at, chunk_size LIMIT 1", "50000")
    c.expect("migrations recorded", f"SELECT uniqExact(name) FROM {db}.schema_migrations",
             str(len(manifest["migrations"])))


def main(argv):
    if len(argv) == 2 and argv[1] == "version":
        with chdb_temp.session() as (_, version):
            print(version)
        return 0
    if len(argv) == 3 and argv[1] == "run":
        return run(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

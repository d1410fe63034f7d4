#!/usr/bin/env python3
"""Check the sink's month split on the current ClickHouse embedded in chDB.

Driven by internal/sink.TestMonthSplitOnModernClickHouse, which writes
DIR/split.json:

    {"database": "...", "window": "1m", "bound": 12, "message": "...",
     "migrations": [{"name": "...", "statements": ["..."]}],
     "rollup": [[window_start, ...], ...],     # one list per INSERT, Unix seconds
     "rejected": [[record_time, ...], ...]}

The script applies the migrations, lowers max_partitions_per_insert_block to
the sink's bound, so that any INSERT the split planned over more months
fails, and sends the planned INSERTs. It then checks that every row arrived,
and that one INSERT of all the rows fails with TOO_MANY_PARTS (252) and the
message the sink classifies as permanent.

    chdb_partitions.py DIR      exit status 0 means all checks passed
"""

import os
import sys

# chdb_temp is in scripts/, with the other chDB scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
import chdb_temp  # noqa: E402

ROLLUP_COLUMNS = (
    "window_start, workspace_id, project_id, api_key_id, provider, model, endpoint, topic, `partition`, chunk, "
    "segment, version, requests, errors, input_tokens, input_text_tokens, input_image_tokens, input_cached_tokens, "
    "output_tokens, total_tokens, latency_ms_sum, latency_ms_max, inconsistent_events, late_events, written_at"
)
REJECTED_COLUMNS = "topic, `partition`, `offset`, reason, field, detail, record_time, size, payload, rejected_at"


def rollup_values(times):
    return ", ".join(
        f"(toDateTime({ts}, 'UTC'), 'w1', 'p1', 'k1', 'openai', 'gpt-4o', '/v1/chat', 'usage-events', 3, 0, 0, 99, "
        f"1, 0, 1, 1, 0, 0, 2, 3, 100, 100, 0, 0, now())"
        for ts in times)


def rejected_values(times, first_offset):
    return ", ".join(
        f"('usage-events', 3, {first_offset + i}, 'invalid_json', '', 'eof', toDateTime({ts}, 'UTC'), 1, '{{', now())"
        for i, ts in enumerate(times))


def main(directory):
    failures = []
    with chdb_temp.migrated(f"{directory}/split.json") as (sess, version, m):
        db = "`" + m["database"] + "`"
        q = lambda sql: sess.query(sql, "TabSeparated").data().strip()
        sess.query(f"SET max_partitions_per_insert_block = {m['bound']}")
        rollup = f"INSERT INTO {db}.usage_rollup_{m['window']} ({ROLLUP_COLUMNS}) VALUES "
        rejected = f"INSERT INTO {db}.usage_rejected_log ({REJECTED_COLUMNS}) VALUES "
        for i, times in enumerate(m["rollup"]):
            try:
                sess.query(rollup + rollup_values(times))
            except Exception as e:
                failures.append(f"planned rollup INSERT {i + 1} of {len(m['rollup'])} failed: {e}")
        offset = 0
        for i, times in enumerate(m["rejected"]):
            try:
                sess.query(rejected + rejected_values(times, offset))
            except Exception as e:
                failures.append(f"planned rejected INSERT {i + 1} of {len(m['rejected'])} failed: {e}")
            offset += len(times)
        all_rollup = [ts for times in m["rollup"] for ts in times]
        all_rejected = [ts for times in m["rejected"] for ts in times]
        want = f"{len(all_rollup)}\t{len(set(all_rollup))}"
        got = q(f"SELECT count(), uniqExact(window_start) FROM {db}.usage_{m['window']}")
        if got != want:
            failures.append(f"usage_{m['window']}: count, distinct windows = {got!r}, want {want!r}")
        got = q(f"SELECT count() FROM {db}.usage_rejected")
        if got != str(len(all_rejected)):
            failures.append(f"usage_rejected: {got} rows, want {len(all_rejected)}")
        months = q(f"SELECT uniqExact(toYYYYMM(window_start)) FROM {db}.usage_{m['window']}")
        # What the sink sent before it split by month, at the server's
        # default limit of 100 partitions.
        sess.query("SET max_partitions_per_insert_block = 100")
        try:
            sess.query(rollup + rollup_values(all_rollup))
            failures.append(f"one INSERT of {months} months succeeded, want TOO_MANY_PARTS")
        except Exception as e:
            if "Code: 252" not in str(e) or m["message"] not in str(e):
                failures.append(f"one INSERT of {months} months: got {e}, want code 252 and {m['message']!r}")
    if failures:
        print(f"chdb_partitions.py: {len(failures)} check(s) failed on ClickHouse {version}:")
        for f in failures:
            print("  " + f)
        return 1
    print(f"chdb_partitions.py: all checks passed on ClickHouse {version}: {len(all_rollup)} rows over {months} "
          f"months in {len(m['rollup'])} INSERTs of at most {m['bound']} months; one INSERT of all is refused")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))

#!/usr/bin/env python3
"""Run analyst and alert queries on a current ClickHouse (chDB) and report rows.

The Go tests in internal/schema (queries_test.go, prices_test.go) run the same
scenario on the ClickHouse 18.16 server and, through this script, on the
ClickHouse embedded in chDB; the Go side asserts both results, so this script
only executes and reports:

    chdb_queries.py DIR    run DIR/scenario.json, print the results as JSON

scenario.json is written by the Go test:

    {"database": "...",
     "migrations": [{"name": "...", "statements": ["..."]}],   # schema.RenderMigrations
     "setup": ["INSERT ...", ...],                              # after the migrations
     "cases": [{"name": "...", "query": "...", "args": ["2024-05-01 00:00:00", 5],
                "setup": ["..."]}]}

Statements and queries run with the scenario's database as the current one.
Queries use clickhouse-go's positional binding: each ? outside quotes and
comments takes the next argument, a string as a quoted literal, a number as is.
Output: {"version": "...", "results": [{"name": "...", "rows": [["col", ...]],
"read_rows": N}]}, where rows are TabSeparated values and read_rows is the
rows the query read from storage. Exit status 1 with a message on stderr if any
statement fails.
"""

import json
import sys

import chdb_temp


def quote(value):
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"unsupported argument {value!r}: want a string or an integer")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def bind(query, args):
    """Replace each ? outside literals, quoted identifiers and comments."""
    out, i, n, used = [], 0, len(query), 0
    while i < n:
        c = query[i]
        if c in "'`\"":
            j = i + 1
            while j < n and query[j] != c:
                j += 2 if query[j] == "\\" else 1
            out.append(query[i:j + 1])
            i = j + 1
        elif query.startswith("--", i):
            j = query.find("\n", i)
            j = n if j < 0 else j
            out.append(query[i:j])
            i = j
        elif query.startswith("/*", i):
            j = query.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(query[i:j])
            i = j
        elif c == "?":
            if used == len(args):
                raise ValueError(f"more ? placeholders than the {len(args)} arguments")
            out.append(quote(args[used]))
            used += 1
            i += 1
        else:
            out.append(c)
            i += 1
    if used != len(args):
        raise ValueError(f"{len(args)} arguments but {used} ? placeholders")
    return "".join(out)


def unescape(field):
    """Undo TabSeparated escaping of one field."""
    if "\\" not in field:
        return field
    table = {"t": "\t", "n": "\n", "r": "\r", "0": "\0", "\\": "\\", "'": "'", "b": "\b", "f": "\f"}
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 1 < len(field):
            out.append(table.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def run(directory):
    results = []
    with chdb_temp.migrated(f"{directory}/scenario.json") as (sess, version, scenario):

        def execute(what, sql):
            try:
                sess.query(sql)
            except Exception as e:
                sys.exit(f"chdb_queries.py: {what} failed on ClickHouse {version}: {e}\n{sql}")

        execute("use database", f"USE `{scenario['database']}`")
        for i, stmt in enumerate(scenario["setup"]):
            execute(f"setup statement {i + 1}", stmt)
        for case in scenario["cases"]:
            for i, stmt in enumerate(case.get("setup") or []):
                execute(f"case {case['name']} setup statement {i + 1}", stmt)
            sql = bind(case["query"], case.get("args") or [])
            try:
                res = sess.query(sql, "TabSeparated")
            except Exception as e:
                sys.exit(f"chdb_queries.py: case {case['name']} failed on ClickHouse {version}: {e}\n{sql}")
            text = res.data()
            lines = text.split("\n")[:-1] if text else []  # every row ends with a newline
            rows = [[unescape(v) for v in line.split("\t")] for line in lines]
            results.append({"name": case["name"], "rows": rows, "read_rows": res.storage_rows_read()})
    json.dump({"version": version, "results": results}, sys.stdout)
    return 0


def main(argv):
    if len(argv) == 2:
        return run(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""A chDB session on a temporary data directory, for the chDB scripts
(chdb_check.py, chdb_queries.py, internal/sink/testdata/chdb_partitions.py):
each starts from an empty embedded ClickHouse and leaves nothing behind."""

import contextlib
import json
import os
import sys
import tempfile

try:
    from chdb import session as chdb_session
except ImportError:  # pragma: no cover - reported to the caller
    sys.exit(f"{os.path.basename(sys.argv[0])}: the chdb package is missing; pip install chdb")


@contextlib.contextmanager
def session():
    """Yield a new session and the version of its ClickHouse; close the
    session and remove its data on the way out."""
    with tempfile.TemporaryDirectory() as data:
        sess = chdb_session.Session(data)
        try:
            yield sess, sess.query("SELECT version()", "TabSeparated").data().strip()
        finally:
            sess.close()


@contextlib.contextmanager
def migrated(manifest_path, passes=1):
    """Read the JSON manifest a Go test wrote ({"database": "...",
    "migrations": [{"name": "...", "statements": ["..."]}], ...}), open a
    session, create the database and run every migration statement, passes
    times over (a later pass must be a no-op). Yield the session, its
    ClickHouse version and the manifest; exit naming a statement that fails."""
    with open(manifest_path) as f:
        manifest = json.load(f)
    script = os.path.basename(sys.argv[0])
    with session() as (sess, version):
        sess.query(f"CREATE DATABASE IF NOT EXISTS `{manifest['database']}`")
        for attempt in range(passes):
            for m in manifest["migrations"]:
                for i, stmt in enumerate(m["statements"]):
                    try:
                        sess.query(stmt)
                    except Exception as e:
                        sys.exit(f"{script}: migration {m['name']} statement {i + 1} (pass {attempt + 1}) "
                                 f"failed on ClickHouse {version}: {e}\n{stmt}")
        yield sess, version, manifest

#!/usr/bin/env bash
# Installs chDB (PyPI), an embedded current ClickHouse engine, used by the
# tests to prove the schema and analyst SQL on a modern ClickHouse as well as
# on the Debian 18.16 server.
set -euo pipefail
CHDB_VERSION="${CHDB_VERSION:-4.4.0}"
case "${1:-install}" in
install)
  if python3 -c "import chdb, sys; sys.exit(0 if chdb.__version__ == '$CHDB_VERSION' else 1)" 2>/dev/null; then
    echo "chdb $CHDB_VERSION already installed"
    exit 0
  fi
  command -v python3 >/dev/null || { echo "chdb.sh: python3 is required" >&2; exit 1; }
  python3 -m pip install --quiet --disable-pip-version-check "chdb==$CHDB_VERSION" || {
    echo "chdb.sh: pip install chdb==$CHDB_VERSION failed (is PyPI reachable?)" >&2; exit 1; }
  python3 -c "import chdb; print('chdb', chdb.__version__, 'installed')"
  ;;
*) echo "usage: $0 install" >&2; exit 2 ;;
esac

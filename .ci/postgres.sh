#!/usr/bin/env bash
# Start a local PostgreSQL server (Debian package) for the test that runs two study workers on one PostgreSQL
# storage, and print the URL to use. Installs the package when it is missing.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 && apt-get install -y -q postgresql >&2
fi
version="$(ls /etc/postgresql | sort -V | tail -1)"
pg_ctlcluster "$version" main start >&2 || pg_ctlcluster "$version" main status >&2
for _ in $(seq 30); do
    su postgres -c "pg_isready -q" && break
    sleep 1
done
su postgres -c "psql -qtc \"SELECT 1 FROM pg_roles WHERE rolname='infercost'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"CREATE USER infercost WITH PASSWORD 'infercost'\"" >&2
su postgres -c "psql -qtc \"SELECT 1 FROM pg_database WHERE datname='infercost_test'\"" | grep -q 1 \
    || su postgres -c "createdb -O infercost infercost_test" >&2
echo "postgresql+psycopg2://infercost:infercost@127.0.0.1:5432/infercost_test"

#!/bin/sh
# The read-only role tokenwatch reads the source tables as (docker-compose.yml): SELECT on
# what exists now and on every table created later in schema public, nothing else.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE tokenwatch_ro LOGIN PASSWORD '${TOKENWATCH_DB_PASSWORD}';
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO tokenwatch_ro;
GRANT USAGE ON SCHEMA public TO tokenwatch_ro;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO tokenwatch_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE "$POSTGRES_USER" IN SCHEMA public GRANT SELECT ON TABLES TO tokenwatch_ro;
SQL

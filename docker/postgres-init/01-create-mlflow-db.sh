#!/bin/bash
# Runs once, when the postgres container initialises an empty data volume
# (files in /docker-entrypoint-initdb.d/ are ignored on later starts).
# Creates the MLflow tracking database next to Dagster's database, owned by
# the same user.
set -euo pipefail

MLFLOW_DB="${MLFLOW_PG_DB:-mlflow}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set=dbname="$MLFLOW_DB" --set=owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'dbname', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dbname')\gexec
SQL

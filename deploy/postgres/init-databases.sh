#!/usr/bin/env bash
# Runs once, when the PostgreSQL data volume is new (docker-entrypoint-initdb.d): one role and
# one database per service, each role owning only its own database. A service's password comes
# from <SERVICE>_DB_PASSWORD; the service reads the same password inside its
# BILLING_<SERVICE>_DATABASE_URL. SERVICE_DATABASES may name other databases (the tests do).
set -euo pipefail

for service in ${SERVICE_DATABASES:-identity ledger tariff notifier}; do
  password_variable="${service^^}_DB_PASSWORD"
  password="${!password_variable:?$password_variable is not set}"
  # psql substitutes :"name" (an identifier) and :'password' (a literal) itself, quoting them.
  psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
       --set name="$service" --set password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
  echo "database $service ready"
done

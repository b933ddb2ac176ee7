#!/bin/sh
# Run once by the postgres image when its data directory is new (/docker-entrypoint-initdb.d): the two roles
# of docs/database-roles.md. The owner owns the database and runs the migrations; the application's role
# owns nothing and is granted, after every migrate, exactly what the application does.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner_password="$MARGIN_OWNER_PASSWORD" -v app_password="$MARGIN_APP_PASSWORD" <<'SQL'
CREATE ROLE margin_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE margin_app LOGIN PASSWORD :'app_password';
ALTER DATABASE margin OWNER TO margin_owner;
ALTER SCHEMA public OWNER TO margin_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL

"""psycopg: connect with a libpq connection string, run one statement, print the first column of each row."""
import sys

import psycopg

conninfo, sql = sys.argv[1], sys.argv[2]
with psycopg.connect(conninfo, autocommit=True) as conn:
    for row in conn.execute(sql).fetchall():
        print(row[0])

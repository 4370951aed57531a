"""PostgreSQL sink: the system of record, written in batches, idempotently.

Per batch, in one transaction and for each table the batch touches: COPY the rows into a
temporary staging table (``LIKE`` the target, ``ON COMMIT DELETE ROWS``), then
``INSERT INTO target SELECT ... FROM staging ON CONFLICT (natural key) DO NOTHING`` (alerts:
``DO UPDATE`` with the newer version). A redelivered batch inserts nothing new, so
at-least-once delivery gives exactly-once rows (ethereum-etl ``postgres_utils.py``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from infra import topics
from infra.topics import TopicSpec
from sinks.base import BatchSink, Record, SinkError, SinkRecordError, SinkUnavailableError
from sinks.pg_tables import BY_TOPIC, Table

log = logging.getLogger(__name__)

DEFAULT_TOPICS: tuple[TopicSpec, ...] = (
    topics.DECISIONS,
    topics.PURCHASES,
    topics.CHAIN_TRANSFERS,
    topics.AUTH_EVENTS,
    topics.SECURITY_EVENTS,
    topics.ALERTS,
    topics.LABELS,
)


# A dead peer (network cut without a reset) is noticed in ~20 s instead of never.
CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


class PostgresSinkError(SinkError):
    """PostgreSQL failed in a way retrying will not fix (a missing table, a bad statement)."""


class PostgresUnavailableError(PostgresSinkError, SinkUnavailableError):
    """Connection refused, lost or the server is shutting down: retry the batch."""


class PostgresRecordError(PostgresSinkError, SinkRecordError):
    """A row broke a type or constraint (bad inet, CHECK violation): dead-letter it."""


def wrap_postgres_error(exc: psycopg.Error) -> PostgresSinkError:
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return PostgresUnavailableError(f"postgres unavailable: {exc}")
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return PostgresRecordError(f"postgres refused a row: {exc}")
    return PostgresSinkError(f"postgres: {exc!r}")


def _staging(table: Table) -> sql.Identifier:
    return sql.Identifier(f"stage_{table.name}")


def _insert_sql(table: Table) -> sql.Composed:
    cols = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    select = sql.SQL("SELECT {cols} FROM {stage}").format(cols=cols, stage=_staging(table))
    if table.newest_by:
        keys = sql.SQL(", ").join(map(sql.Identifier, table.key))
        newest = sql.SQL("SELECT DISTINCT ON ({keys}) {cols} FROM {stage} ORDER BY {keys}, {o}")
        order = sql.SQL(table.newest_by)
        select = newest.format(keys=keys, cols=cols, stage=_staging(table), o=order)
    return sql.SQL("INSERT INTO {target} ({cols}) {select} ON CONFLICT ({keys}) {action}").format(
        target=sql.Identifier(table.name),
        cols=cols,
        select=select,
        keys=sql.SQL(", ").join(map(sql.Identifier, table.key)),
        action=sql.SQL(table.on_conflict),
    )


class PostgresSink(BatchSink):
    name = "postgres"

    def __init__(self, dsn: str, specs: Sequence[TopicSpec] = DEFAULT_TOPICS):
        self.dsn = dsn
        self.topics = tuple(specs)
        self.tables = {s.name: BY_TOPIC[s.name] for s in self.topics}
        self._conn: psycopg.Connection | None = None

    def setup(self) -> None:
        self._connection().execute("SELECT 1").fetchone()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, batch: Sequence[Record]) -> None:
        rows: dict[str, list[tuple]] = defaultdict(list)
        for record in batch:
            rows[record.spec.name].append(self.tables[record.spec.name].row(record.value))
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                for topic, table_rows in rows.items():
                    self._upsert(cur, self.tables[topic], table_rows)
        except psycopg.Error as exc:
            error = wrap_postgres_error(exc)
            if isinstance(error, PostgresUnavailableError):
                self.close()  # reconnect on the next attempt
            raise error from exc

    @staticmethod
    def _upsert(cur: psycopg.Cursor, table: Table, rows: list[tuple]) -> None:
        copy = sql.SQL("COPY {stage} ({cols}) FROM STDIN").format(
            stage=_staging(table), cols=sql.SQL(", ").join(map(sql.Identifier, table.columns))
        )
        with cur.copy(copy) as out:
            for row in rows:
                out.write_row(row)
        cur.execute(_insert_sql(table))

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                conn = psycopg.connect(self.dsn, autocommit=True, **CONNECT_OPTIONS)
            except psycopg.Error as exc:
                raise wrap_postgres_error(exc) from exc
            self._prepare(conn)
            self._conn = conn
        return self._conn

    def _prepare(self, conn: psycopg.Connection) -> None:
        """Temporary staging tables of this session, emptied at every commit."""
        try:
            for table in set(self.tables.values()):
                conn.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE IF NOT EXISTS {stage}"
                        " (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                    ).format(stage=_staging(table), target=sql.Identifier(table.name))
                )
        except psycopg.Error as exc:
            conn.close()
            raise wrap_postgres_error(exc) from exc


def blacklist_wallets(
    conn: psycopg.Connection, wallets: Sequence[str], reason: str, source: str,
    expires_at: datetime | None,
) -> None:
    """Upsert wallets into ``blacklisted_wallets``; a permanent entry stays permanent."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO blacklisted_wallets (wallet, reason, source, expires_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (wallet) DO UPDATE SET"
            " reason = EXCLUDED.reason, source = EXCLUDED.source,"
            " expires_at = CASE WHEN blacklisted_wallets.expires_at IS NULL"
            "   OR EXCLUDED.expires_at IS NULL THEN NULL"
            "   ELSE GREATEST(blacklisted_wallets.expires_at, EXCLUDED.expires_at) END",
            [(w, reason, source, expires_at) for w in wallets],
        )

"""The one Faust app, configured from settings (faust's guide: a single ``app.py``).

Run a worker with ``sentinel worker`` (always without the web server: faust would otherwise
bind 0.0.0.0:6066). Agents live in ``streams/agents.py``; the logic they call in
``processors/``.
"""

from __future__ import annotations

import faust

from infra.settings import Settings, get_settings
from streams import faust_compat


def _credentials(settings: Settings):
    kafka = settings.kafka
    if kafka.sasl_mechanism and kafka.sasl_username:
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        return faust.SASLCredentials(
            username=kafka.sasl_username, password=password, mechanism=kafka.sasl_mechanism
        )
    return None


def create_app(settings: Settings) -> faust.App:
    faust_compat.register()
    stream = settings.stream
    servers = ";".join(settings.kafka.bootstrap_servers.split(","))
    session_s = settings.kafka.session_timeout_ms / 1000
    return faust_compat.App(  # its flow control keeps records fetched at an assignment
        stream.app_id,
        broker=f"{faust_compat.SCHEME}://{servers}",
        broker_credentials=_credentials(settings),
        broker_session_timeout=session_s,
        broker_heartbeat_interval=min(1.0, session_s / 3),
        store="memory://",  # wallet state stays small by expiry (streams/tables.py)
        datadir=str(stream.data_dir / "faust"),
        web_enabled=False,
        web_bind="127.0.0.1",
        web_port=stream.web_port,
        topic_partitions=6,
        table_standby_replicas=1,
        topic_replication_factor=1,
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        stream_wait_empty=False,
        Worker=faust_compat.Worker,  # no terminal spinner (faust_compat override 6)
    )


app = create_app(get_settings())

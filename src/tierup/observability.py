"""Prometheus metrics of the process (shared by every worker of `tierup serve --workers N`), and
the log configuration `tierup serve` hands to uvicorn.

Several workers: prometheus_client's multiprocess mode. Each worker writes its values to files in
PROMETHEUS_MULTIPROC_DIR (the CLI sets it to a fresh temporary directory before the workers start,
since prometheus_client reads it at import), and whichever worker answers /metrics sums them all.
"""

from __future__ import annotations

import contextlib
import copy
import glob
import json
import logging
import os
import re
import tempfile
from datetime import datetime, timezone
from typing import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

OPERATION_SECONDS = Histogram(
    "tierup_graphql_request_duration_seconds",
    "GraphQL requests over HTTP, from arrival to the encoded answer, by operation name and type. "
    "Unnamed operations, documents that do not parse and names past the first 100 share operation=\"other\".",
    ["operation", "type"])
GRAPHQL_ERRORS = Counter(
    "tierup_graphql_errors", "GraphQL requests answered with at least one error of this code.", ["code"])
SQL_STATEMENTS = Counter("tierup_sql_statements", "SQL statements sent to the database.")
# "livesum": the gauge of a worker that is gone stops counting (see _forget_dead_workers).
WEBSOCKET_CONNECTIONS = Gauge(
    "tierup_websocket_connections", "WebSocket connections open.", multiprocess_mode="livesum")
SUBSCRIPTIONS = Gauge(
    "tierup_subscriptions_active", "GraphQL subscriptions live over WebSockets.", multiprocess_mode="livesum")
JOB_SECONDS = Histogram(
    "tierup_job_duration_seconds", "Scheduled job runs (expiry, tier evaluation, RFM) and how long each took.",
    ["job"], buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0))
JOB_FAILURES = Counter("tierup_job_failures", "Scheduled job runs that raised.", ["job"])
# Observed once per event in each process that receives it, whether or not anyone there subscribes.
BROKER_LAG = Histogram(
    "tierup_broker_lag_seconds",
    "Live events from their publication (after the commit) to their arrival in this process's fan-out: "
    "next to nothing on the memory broker, the trip through Redis with the Redis broker.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))


@contextlib.contextmanager
def worker_metrics_directory(workers: int) -> Iterator[None]:
    """For `tierup serve --workers N`: a fresh directory for the workers about to start (they inherit the
    variable), removed when the server stops. One set by the operator is used as it is; one worker needs none."""
    if workers == 1 or os.environ.get(MULTIPROC_DIR):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="tierup-metrics-") as path:
        os.environ[MULTIPROC_DIR] = path
        try:
            yield
        finally:
            del os.environ[MULTIPROC_DIR]


def exposition() -> bytes:
    """The metrics in Prometheus text format: this process's, or every worker's summed."""
    path = os.environ.get(MULTIPROC_DIR)
    if not path:
        return _counts_as_integers(generate_latest(REGISTRY))
    _forget_dead_workers(path)
    registry = CollectorRegistry()  # per scrape, as prometheus_client's multiprocess guide does it
    MultiProcessCollector(registry, path)
    return _counts_as_integers(generate_latest(registry))


def _counts_as_integers(text: bytes) -> bytes:
    """Whole numbers written as integers (`17`, not `17.0` or `1.7e+07`), which the text format allows:
    tools such as bench/api_bench.py read counters like tierup_sql_statements_total as integers."""
    lines = []
    for line in text.decode().splitlines():
        if not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            number = float(value)
            if number.is_integer() and abs(number) < 2 ** 53:
                line = f"{head} {int(number)}"
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def _forget_dead_workers(path: str) -> None:
    """Drop the live gauges of workers that exited: uvicorn replaces a crashed worker without telling us,
    and its last values (open sockets, live subscriptions) must not count forever."""
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_GAUGE_FILE.search(file)
        if match and not _alive(int(match.group(1))):
            mark_process_dead(int(match.group(1)), path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds the number
        return True
    return True


def log_config(level: str, log_format: str) -> dict:
    """uvicorn's logging configuration, with tierup's loggers on the same handlers, and every line a
    JSON object when log_format is "json". uvicorn applies it in each worker."""
    config = copy.deepcopy(_uvicorn_logging())
    config["loggers"]["tierup"] = {"handlers": ["default"], "level": "DEBUG" if level == "trace" else level.upper(),
                                   "propagate": False}
    if log_format == "json":
        config["formatters"] = {name: {"()": f"{__name__}.JsonFormatter"} for name in config["formatters"]}
    return config


def _uvicorn_logging() -> dict:
    from uvicorn.config import LOGGING_CONFIG  # here: only `tierup serve` needs uvicorn

    return LOGGING_CONFIG


# What every LogRecord carries; anything else on a record was passed as `extra=` and goes into the JSON.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update((key, value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)

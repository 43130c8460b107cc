"""The Spark Structured Streaming job: ``trades`` from Kafka to the 1-minute analytics.

Kafka source -> the Binance trade JSON parsed with an explicit schema -> watermark on trade time
(``lateness``) -> duplicates by (symbol, trade id) dropped within the watermark -> 1-minute
tumbling windows per symbol with the aggregates of :mod:`crypto_platform.core.analytics` (the
very SQL the Dagster path runs on DuckDB) -> a ``foreachBatch`` sink (:mod:`.sink`).

Output mode is *append*: a (symbol, minute) row is written once, in the micro-batch after the
watermark (the newest trade time read, minus ``lateness``) passes the minute's end, i.e. once a
trade ``lateness`` past that end has been read. A trade older than the watermark when it is read
is late and dropped: its minute has closed, or it trails the newest trade by more than
``lateness``. Every duplicate that is not late meets its first copy in the state, so none is
counted twice. The checkpoint holds the Kafka offsets, the open windows and the trade ids seen,
so a restart (even after SIGKILL) resumes where it stopped, and the sinks make a replayed
micro-batch harmless.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from crypto_platform.core.analytics import MINUTE_AGGREGATES, PRICE_SQL_TYPE
from crypto_platform.spark.options import JobOptions

log = logging.getLogger(__name__)

QUERY_NAME = "trade_analytics_1m"
WINDOW = "1 minute"

# The Binance trade event as the ingestion service writes it to ``trades`` (see core/trades.py).
# Its names differ only by case (e/E, t/T, m/M) and Spark resolves names case-insensitively, so
# the parsed struct is renamed by position (a struct cast) before any field is read.
WIRE_SCHEMA = "e STRING, E BIGINT, s STRING, t BIGINT, p STRING, q STRING, T BIGINT, m BOOLEAN"
NAMED_SCHEMA = (
    "STRUCT<event_type: STRING, event_time_ms: BIGINT, symbol: STRING, trade_id: BIGINT, "
    "price_text: STRING, qty_text: STRING, trade_time_ms: BIGINT, buyer_is_maker: BOOLEAN>"
)
TRADE_COLUMNS = ("symbol", "trade_id", "price", "qty", "trade_time", "buyer_is_maker")


def session_config(master: str | None, jars: list[Path] | None) -> dict[str, str]:
    """Spark settings for a lean session; ``master``/``jars`` None = as spark-submit set them.

    Local mode stays small for a 2-core machine: driver memory 1g, two shuffle partitions, no
    UI, loopback only. Spark's launcher adds the Java 17 module options itself.
    """
    config = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    if master is not None:
        log4j = resources.files("crypto_platform.spark") / "resources" / "log4j2.properties"
        config["spark.master"] = master
        config["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{log4j}"
        if master.startswith("local"):
            config |= {
                "spark.driver.memory": "1g",
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
            }
    if jars:
        config["spark.jars"] = ",".join(str(j) for j in jars)
    return config


def build_session(master: str | None, jars: list[Path] | None) -> SparkSession:
    """The job's SparkSession (settings only apply if none runs yet in this process)."""
    if master is not None and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # else Spark picks eth0's address
    builder = SparkSession.builder.appName("crypto-platform trade_analytics_1m")
    for key, value in session_config(master, jars).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def read_kafka(spark: SparkSession, options: JobOptions) -> DataFrame:
    """The raw Kafka records of the trades topic (value bytes, partition, offset, ...)."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", options.bootstrap_servers)
        .option("subscribe", options.topic)
        .option("startingOffsets", options.starting_offsets)
    )
    if options.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(options.max_offsets_per_trigger))
    return reader.load()


def parse_trades(records: DataFrame) -> DataFrame:
    """Kafka records -> trades with the lake's columns, ``valid`` (False = not a trade) and the
    record's Kafka ``partition`` and ``offset`` (to name the invalid ones).

    Prices and quantities go from Binance's decimal strings straight to DECIMAL(18, 8), as in
    the lake, so the sums are exact; TRY_CAST turns a malformed number into NULL, not a crash.
    """
    event = F.from_json(F.col("value").cast("string"), WIRE_SCHEMA).cast(NAMED_SCHEMA)
    trades = records.select("partition", "offset", event.alias("event")).select(
        "partition",
        "offset",
        F.col("event.event_type").alias("event_type"),
        F.col("event.symbol").alias("symbol"),
        F.col("event.trade_id").alias("trade_id"),
        F.expr(f"TRY_CAST(event.price_text AS {PRICE_SQL_TYPE})").alias("price"),
        F.expr(f"TRY_CAST(event.qty_text AS {PRICE_SQL_TYPE})").alias("qty"),
        F.timestamp_millis(F.col("event.trade_time_ms")).alias("trade_time"),
        F.col("event.buyer_is_maker").alias("buyer_is_maker"),
    )
    valid = (
        (F.col("event_type") == "trade")
        & F.col("symbol").isNotNull()
        & F.col("trade_id").isNotNull()
        & (F.col("price") > 0)
        & (F.col("qty") > 0)
        & F.col("trade_time").isNotNull()
        & F.col("buyer_is_maker").isNotNull()
    )
    return trades.withColumn("valid", F.coalesce(valid, F.lit(False)))


def minute_analytics(trades: DataFrame, lateness_seconds: float) -> DataFrame:
    """Valid trades -> one row per (symbol, closed minute), columns of ``trade_analytics_1m``."""
    aggregates = [F.expr(expr).alias(name) for name, expr, _ in MINUTE_AGGREGATES]
    lateness = f"{round(lateness_seconds * 1000)} milliseconds"
    windows = (
        trades.where("valid")
        .select(*TRADE_COLUMNS)
        .withWatermark("trade_time", lateness)
        .dropDuplicatesWithinWatermark(["symbol", "trade_id"])
        .groupBy("symbol", F.window("trade_time", WINDOW))
        .agg(*aggregates)
    )
    return windows.select(
        "symbol",
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        *[name for name, _, _ in MINUTE_AGGREGATES],
    )


def observed(trades: DataFrame) -> DataFrame:
    """Count what each micro-batch read and rejected (``observedMetrics`` in its progress).

    A record that is not a valid trade is skipped, not fatal (a poison record would otherwise
    stop the stream for good); it stays in Kafka, and the progress log names the first one.
    """
    invalid_at = F.when(~F.col("valid"), F.struct("partition", "offset"))
    return trades.observe(
        "input",
        F.count(F.lit(1)).alias("records"),
        F.count_if(~F.col("valid")).alias("rejected"),
        F.min(invalid_at).alias("first_rejected"),
    )


def start(
    spark: SparkSession,
    options: JobOptions,
    write_batch: Callable[[DataFrame, int], None],
) -> StreamingQuery:
    """Start the streaming query; ``write_batch(rows, batch_id)`` stores each batch's minutes."""
    trades = observed(parse_trades(read_kafka(spark, options)))
    writer = (
        minute_analytics(trades, options.lateness_seconds)
        .writeStream.queryName(QUERY_NAME)
        .outputMode("append")
        .option("checkpointLocation", str(options.checkpoint_dir))
        .foreachBatch(write_batch)
    )
    if options.available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(
            processingTime=f"{round(options.trigger_seconds * 1000)} milliseconds"
        )
    return writer.start()

"""Pure logic: no Dagster, no Kafka client, so the Spark job and the benchmarks reuse it."""

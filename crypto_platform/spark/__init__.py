"""The scale-out path: the 1-minute analytics as a Spark Structured Streaming job over ``trades``.

Needs the ``spark`` extra (pyspark) and the Kafka connector jars (``crypto-platform spark
fetch``). Importing this package imports neither; :mod:`crypto_platform.spark.job` does.
"""

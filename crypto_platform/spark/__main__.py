"""Entry point for ``spark-submit``: the same job and options as ``crypto-platform spark``.

    spark-submit --master spark://host:7077 --jars "$(crypto-platform spark fetch)" \\
        crypto_platform/spark/__main__.py --lateness 5

The master and the jars are spark-submit's; the platform's settings (environment or
``crypto-platform.toml``) give the Kafka servers, the DuckDB file and the data folder.
Only the driver runs Python code (the job has no Python UDFs), so executors need no package.
"""

import sys

from crypto_platform.cli import main

if __name__ == "__main__":
    main(args=["spark", *sys.argv[1:]], prog_name="crypto_platform.spark")

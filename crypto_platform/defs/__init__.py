"""Dagster glue: partitions, resources, assets, checks, sensors and jobs. Logic lives in core/."""

"""The code location: one ``Definitions`` object, built from settings.

``workspace.yaml`` loads ``defs``; tests call :func:`build_definitions` with their own settings
(a temporary data folder, a throwaway broker) to get the same definitions on test resources.
"""

from __future__ import annotations

import dagster as dg

from crypto_platform.defs.resources import KafkaResource
from crypto_platform.settings import Settings, load_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every asset, check, sensor, job and resource of the platform, explicitly listed."""
    return dg.Definitions(
        resources={"kafka": KafkaResource(bootstrap_servers=settings.bootstrap_servers)},
    )


defs = build_definitions(load_settings())

"""Load: the simulator at 5k trades/s over 10 symbols into the real service for 75 s (CI);
``python -m bench.soak`` runs the same for 10 minutes or longer."""

from __future__ import annotations

import os

import pytest

from bench.soak import soak

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow]
SECONDS = float(os.environ.get("CRYPTO_PLATFORM_SOAK_SECONDS", "75"))


def test_5k_trades_per_second_with_flat_memory_and_no_lag_growth(bootstrap: str, tmp_path):
    result = soak(bootstrap, SECONDS, 5000.0, tmp_path / "ingest.log")
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(summary)
    assert result["trades_per_s"] > 4500, summary  # it keeps up with the feed
    assert result["rss_growth_pct"] < 10, summary  # flat memory after warm-up
    # no lag growth: the end is no further behind than the start (plus scheduling noise)
    assert result["lag_last_third_max_ms"] < max(2 * result["lag_first_third_max_ms"], 3000)

"""The exchange simulator speaks Binance's protocol on 127.0.0.1, and injects faults on request."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import websocket

from crypto_platform.core.simulation import MarketSimulation
from crypto_platform.core.trades import (
    TradeValidationError,
    parse_trade_frame,
    trade_to_event,
)
from crypto_platform.ingest.exchange_sim import ExchangeSimulator, Faults
from crypto_platform.ingest.replay import RecordedTrade, ReplayFileError, load_recordings
from crypto_platform.ingest.sim_protocol import event_json
from crypto_platform.ingest.sim_sources import ReplaySource, SimulatedSource, wall_ms

BTC_FILE = "btcusdt_2024-12-31/BTCUSDT-trades-2024-12-31_00-00_00-01.csv"
START = 1_764_072_000_000


@pytest.fixture
def recorded(shared_binance: Path) -> list[RecordedTrade]:
    return load_recordings([shared_binance / BTC_FILE])


def _get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.headers["Content-Type"].startswith("application/json")
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _read_texts(ws: websocket.WebSocket, count: int) -> list[str]:
    texts = []
    while len(texts) < count:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            texts.append(frame.data.decode())
    return texts


@pytest.mark.parametrize("combined", [True, False])
def test_streams_send_every_recorded_trade_in_binance_shape(
    recorded: list[RecordedTrade], combined: bool
) -> None:
    with ExchangeSimulator(ReplaySource(recorded, speed=None)) as sim:
        path = "/stream?streams=btcusdt@trade" if combined else "/ws/btcusdt@trade"
        ws = websocket.create_connection(sim.ws_url + path, timeout=5)
        texts = _read_texts(ws, len(recorded))
        ws.close()
    assert len(recorded) == 4212
    for text, record in zip(texts, recorded, strict=True):
        expected = event_json(record.event)
        if combined:
            assert text == f'{{"stream":"btcusdt@trade","data":{expected}}}'
        else:
            assert text == expected
        assert parse_trade_frame(text) == record.trade
    first = json.loads(texts[0])
    first = first["data"] if combined else first
    assert first == {
        "e": "trade",
        "E": 1735603200213,
        "s": "BTCUSDT",
        "t": 4356587539,
        "p": "92792.05000000",
        "q": "0.00129000",
        "T": 1735603200213,
        "m": False,
        "M": True,
    }


def test_rest_serves_historical_trades_time_and_binance_errors(
    recorded: list[RecordedTrade],
) -> None:
    with ExchangeSimulator(ReplaySource(recorded, speed=None)) as sim:
        ws = websocket.create_connection(sim.ws_url + "/ws/btcusdt@trade", timeout=5)
        _read_texts(ws, len(recorded))
        first_id = recorded[0].trade.trade_id
        url = f"{sim.base_url}/api/v3/historicalTrades?symbol=BTCUSDT"
        status, rows = _get(f"{url}&fromId={first_id + 10}&limit=3")
        assert status == 200
        assert rows == [
            {
                # row 11 of the dump: 4356587549,92792.05000000,0.00006000,5.56752300,...
                "id": 4356587549,
                "price": "92792.05000000",
                "qty": "0.00006000",
                "quoteQty": "5.567523",
                "time": 1735603200355,
                "isBuyerMaker": False,
                "isBestMatch": True,
            },
            *rows[1:],
        ]
        assert [r["id"] for r in rows] == [first_id + 10, first_id + 11, first_id + 12]
        status, page = _get(f"{url}&fromId={first_id}&limit=1000")
        assert len(page) == 1000 and page[-1]["id"] == first_id + 999
        assert _get(f"{url}&limit=2")[1][-1]["id"] == recorded[-1].trade.trade_id
        assert _get(f"{url}&fromId={recorded[-1].trade.trade_id + 1}")[1] == []
        before = sim.source.clock_ms()
        server_time = _get(f"{sim.base_url}/api/v3/time")[1]["serverTime"]  # type: ignore[index]
        assert recorded[-1].trade.trade_time_ms <= before <= server_time <= sim.source.clock_ms()
        assert _get(f"{url.replace('BTCUSDT', 'NOPEUSDT')}") == (
            400,
            {"code": -1121, "msg": "Invalid symbol."},
        )
        assert _get(f"{url}&limit=1001")[0] == 400
        assert _get(f"{url}&fromId=abc")[0] == 400
        assert _get(f"{sim.base_url}/api/v3/klines")[0] == 404
        assert _get(f"{sim.base_url}/nowhere/btcusdt@trade")[0] == 404
        sim.fail_rest(1)
        assert _get(f"{url}&limit=1")[0] == 503
        sim.withhold("BTCUSDT", first_id + 1, first_id + 2)
        ids = [r["id"] for r in _get(f"{url}&fromId={first_id}&limit=4")[1]]
        assert ids == [first_id, first_id + 3]
        ws.close()


def test_drop_after_n_messages_cuts_each_connection_until_the_budget_is_spent(
    recorded: list[RecordedTrade],
) -> None:
    faults = Faults(drop_after_messages=100, max_drops=2)
    with ExchangeSimulator(ReplaySource(recorded, speed=20.0), faults) as sim:  # ~700 trades/s
        for _ in range(2):
            ws = websocket.create_connection(sim.ws_url + "/ws/btcusdt@trade", timeout=5)
            assert len(_read_texts(ws, 100)) == 100
            with pytest.raises(websocket.WebSocketConnectionClosedException):
                _read_texts(ws, 1)
        ws = websocket.create_connection(sim.ws_url + "/ws/btcusdt@trade", timeout=5)
        assert len(_read_texts(ws, 300)) == 300  # budget spent: no more drops
        ws.close()
        assert sim.stats.drops == 2 and sim.stats.connections_opened == 3


def test_malformed_frames_come_between_real_ones_with_known_reasons(
    recorded: list[RecordedTrade],
) -> None:
    with ExchangeSimulator(ReplaySource(recorded, speed=None), Faults(malformed_every=10)) as sim:
        ws = websocket.create_connection(sim.ws_url + "/stream?streams=btcusdt@trade", timeout=5)
        texts = _read_texts(ws, 66)
        ws.close()
    reasons, trades = Counter(), []
    for text in texts:
        try:
            trades.append(parse_trade_frame(text, frozenset({"BTCUSDT"})))
        except TradeValidationError as exc:
            reasons[exc.reason] += 1
    assert [t.trade_id for t in trades] == [r.trade.trade_id for r in recorded[:60]]
    assert reasons == Counter(
        malformed_json=1, unknown_event=1, bad_trade_id=1, bad_price=1, bad_qty=1, bad_maker_flag=1
    )
    assert sum(sim.stats.malformed_sent.values()) >= 6


def test_a_stall_sends_nothing_not_even_pings_then_cuts(recorded: list[RecordedTrade]) -> None:
    faults = Faults(stall_after_messages=5, stall_seconds=1.0)
    source = ReplaySource(recorded, speed=None)
    with ExchangeSimulator(source, faults, ping_interval_s=0.1) as sim:
        ws = websocket.create_connection(sim.ws_url + "/ws/btcusdt@trade", timeout=5)
        _read_texts(ws, 5)
        ws.settimeout(0.6)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv_data_frame(True)  # silence: no trade, no ping
        ws.settimeout(5)
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:
                ws.recv_data_frame(True)
        assert sim.stats.stalls == 1


def test_pings_are_sent_and_answered_pongs_counted() -> None:
    simulation = MarketSimulation(["btcusdt"], seed=1, start_ms=wall_ms(), rate_scale=0.01)
    with ExchangeSimulator(SimulatedSource(simulation), ping_interval_s=0.1) as sim:
        ws = websocket.create_connection(sim.ws_url + "/ws/btcusdt@trade", timeout=5)
        pings = 0
        deadline = time.monotonic() + 5
        while pings < 3 and time.monotonic() < deadline:
            opcode, _frame = ws.recv_data_frame(True)  # answers each ping with a pong
            pings += opcode == websocket.ABNF.OPCODE_PING
        time.sleep(0.3)
        ws.close()
        assert pings == 3 and sim.stats.pongs >= 2


def test_a_bad_stream_path_is_refused_with_http_400() -> None:
    simulation = MarketSimulation(["btcusdt"], seed=1, start_ms=START)
    with ExchangeSimulator(SimulatedSource(simulation)) as sim:
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(sim.ws_url + "/ws/", timeout=5)
        assert info.value.status_code == 400


def test_paced_replay_keeps_the_recorded_rhythm(recorded: list[RecordedTrade]) -> None:
    """Two recorded minutes at 60x take about two seconds; the clock follows trade time."""
    with ExchangeSimulator(ReplaySource(recorded, speed=60.0)) as sim:
        ws = websocket.create_connection(sim.ws_url + "/ws/btcusdt@trade", timeout=5)
        started = time.monotonic()
        texts = _read_texts(ws, len(recorded))
        elapsed = time.monotonic() - started
        ws.close()
        assert len(texts) == 4212
        assert 1.5 < elapsed < 6.0
        assert sim.source.clock_ms() >= recorded[-1].trade.trade_time_ms


def test_simulated_source_in_real_time_serves_only_what_has_happened() -> None:
    simulation = MarketSimulation(["btcusdt", "ethusdt"], seed=5, start_ms=wall_ms())
    with ExchangeSimulator(SimulatedSource(simulation), wait_for_clients=0) as sim:
        ws = websocket.create_connection(sim.ws_url + "/ws/btcusdt@trade", timeout=5)
        texts = _read_texts(ws, 20)
        ws.close()
        events = [json.loads(t) for t in texts]
        assert all(e["E"] >= e["T"] for e in events)
        assert all(abs(e["E"] - wall_ms()) < 10_000 for e in events)
        served = _get(f"{sim.base_url}/api/v3/historicalTrades?symbol=BTCUSDT&limit=1000")[1]
        assert served[-1]["time"] <= sim.source.clock_ms()
        expected = [
            trade_to_event(t)["t"]
            for t in simulation.trades_between(
                simulation.start_ms, served[-1]["time"] + 1, ["BTCUSDT"]
            )
        ]
        assert [r["id"] for r in served] == expected[-len(served) :]


def test_recordings_in_json_lines_replay_as_recorded(tmp_path: Path) -> None:
    events = [
        {
            "e": "trade",
            "E": 1735603200300,
            "s": "ETHBTC",
            "t": 7,
            "p": "0.03500000",
            "q": "1.50000000",
            "T": 1735603200299,
            "m": False,
            "M": True,
        },
        {
            "e": "trade",
            "E": 1735603200400,
            "s": "ETHBTC",
            "t": 8,
            "p": "0.03510000",
            "q": "0.10000000",
            "T": 1735603200400,
            "m": True,
            "M": True,
        },
    ]
    path = tmp_path / "ethbtc.jsonl"
    path.write_text(
        json.dumps(events[0])
        + "\n"
        + json.dumps({"stream": "ethbtc@trade", "data": events[1]})
        + "\n\n"
    )
    recorded = load_recordings([path])
    assert [r.event for r in recorded] == events
    (tmp_path / "bad.jsonl").write_text(json.dumps(events[0] | {"p": "-1"}) + "\n")
    with pytest.raises(ReplayFileError, match=r"bad\.jsonl line 1: bad_price"):
        load_recordings([tmp_path / "bad.jsonl"])
    with pytest.raises(ReplayFileError, match="unknown recording format"):
        load_recordings([tmp_path / "x.parquet"])

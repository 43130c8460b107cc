"""The dashboard's web application: one page, its static files, and a read-only JSON API.

Routes (all GET):

- ``/`` the page; ``/static/*`` its script and style (from this package);
- ``/vendor/plotly.min.js`` the charting library, served from the installed ``plotly`` Python
  package (no CDN: the page works without internet);
- ``/api/config`` refresh interval, the bar intervals and the ranges offered for each;
- ``/api/symbols`` the symbols with minutes, and each one's latest minute;
- ``/api/windows?symbol=BTCUSDT&range=60&interval=1m`` one symbol's bars over the last ``range``
  minutes of its data, as columns, plus the latest values: 1-minute bars from
  ``trade_analytics_1m``, or the hourly (``1h``) and daily (``1d``) roll-ups;
- ``/api/alerts?symbol=BTCUSDT&limit=20`` the latest alerts (all symbols without ``symbol``);
- ``/api/trends?symbol=BTCUSDT&range=60`` moving averages, MACD, volatility and the trend label
  of the same minutes as ``/api/windows``, as columns.

Query parameters are validated (unknown ones too) and only ever reach DuckDB as bound values.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from crypto_platform.dashboard.data import (
    DEFAULT_RANGES,
    INTERVALS,
    DashboardData,
    UnknownSymbolError,
)
from crypto_platform.query.database import QueryError

STATIC_DIR = Path(str(files("crypto_platform.dashboard") / "static"))
Symbol = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{2,20}$"), AfterValidator(str.upper)]


class _Params(BaseModel):
    """Query parameters: unknown names are errors, so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class WindowsParams(_Params):
    symbol: Symbol
    interval: Literal["1m", "1h", "1d"] = "1m"  # before range: its check needs the interval
    range: int | None = Field(None, validate_default=True)  # None: the interval's default

    @field_validator("range")
    @classmethod
    def _offered_for_interval(cls, value: int | None, info: ValidationInfo) -> int:
        interval = info.data.get("interval", "1m")
        if value is None:
            return DEFAULT_RANGES[interval]
        offered = INTERVALS[interval][1]
        if value not in offered:
            choices = ", ".join(map(str, offered))
            raise ValueError(f"must be one of {choices} (minutes) for {interval} bars")
        return value


class TrendsParams(WindowsParams):
    """Trends are per minute: only the 1-minute bars have them."""

    interval: Literal["1m"] = "1m"


class AlertsParams(_Params):
    symbol: Symbol | None = None
    limit: int = Field(20, ge=1, le=500)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


P = TypeVar("P", bound=_Params)


def _params(model: type[P], request: Request) -> P:
    return model.model_validate(dict(request.query_params))


@functools.cache
def plotly_js() -> bytes:
    """plotly.js as shipped inside the ``plotly`` wheel (read once, then kept)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


def create_app(duckdb_path: Path, refresh_seconds: float = 5.0) -> Starlette:
    data = DashboardData(duckdb_path)

    def guarded(handler):
        def endpoint(request: Request) -> Response:
            try:
                return handler(request)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'query'}: {e['msg']}" for e in exc.errors()
                )
                return _error(400, f"bad parameters: {problems}")
            except UnknownSymbolError as exc:
                return _error(404, f"no minutes for symbol {exc.args[0]}")
            except QueryError as exc:
                return _error(503, str(exc))

        return endpoint

    def index(_request: Request) -> Response:
        return Response((STATIC_DIR / "index.html").read_bytes(), media_type="text/html")

    def vendor_plotly(_request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=86400"}
        return Response(plotly_js(), media_type="text/javascript", headers=headers)

    def config(_request: Request) -> Response:
        intervals = {
            name: {"ranges": list(ranges), "default_range": DEFAULT_RANGES[name]}
            for name, (_table, ranges) in INTERVALS.items()
        }
        return JSONResponse({"refresh_seconds": refresh_seconds, "intervals": intervals})

    def symbols(request: Request) -> Response:
        _params(_Params, request)
        return JSONResponse({"symbols": data.symbols()})

    def windows(request: Request) -> Response:
        params = _params(WindowsParams, request)
        return JSONResponse(data.windows(params.symbol, params.range, params.interval))

    def trends(request: Request) -> Response:
        params = _params(TrendsParams, request)
        return JSONResponse(data.trends(params.symbol, params.range))

    def alerts(request: Request) -> Response:
        params = _params(AlertsParams, request)
        return JSONResponse({"alerts": data.alerts(params.symbol, params.limit)})

    routes = [
        Route("/", index),
        Route("/vendor/plotly.min.js", vendor_plotly),
        Route("/api/config", guarded(config)),
        Route("/api/symbols", guarded(symbols)),
        Route("/api/windows", guarded(windows)),
        Route("/api/alerts", guarded(alerts)),
        Route("/api/trends", guarded(trends)),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(GZipMiddleware, minimum_size=1024)])

// crypto-platform dashboard: polls the read-only JSON API and redraws without reloading.
"use strict";

const state = {
  symbol: null, interval: "1m", range: null, intervals: {}, refreshMs: 5000, timer: null, busy: false,
};
const el = (id) => document.getElementById(id);

const RANGE_LABELS = {
  15: "15m", 60: "1h", 240: "4h", 1440: "24h", 10080: "7d", 43200: "30d", 129600: "90d", 525600: "1y",
};
const INTERVAL_NAMES = { "1m": "minute", "1h": "hour", "1d": "day" };
// Moving averages drawn over the 1-minute candles (from trade_trends_1m).
const AVERAGES = [
  ["sma_15", "SMA 15", "#0891b2", "solid"], ["sma_60", "SMA 60", "#a16207", "solid"],
  ["ema_12", "EMA 12", "#db2777", "dash"], ["ema_26", "EMA 26", "#4b5563", "dash"],
];

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function fmt(value, options) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString("en-US", options);
}
// Enough decimals to see a tick move, not more: 93,366.98 but 2.0841 and 0.00012345.
function price(v) {
  const size = Math.abs(Number(v));
  const digits = size >= 1000 ? 2 : size >= 1 ? 4 : 8;
  return fmt(v, { minimumFractionDigits: Math.min(digits, 2), maximumFractionDigits: digits });
}
const sig = (v) => fmt(v, { maximumSignificantDigits: 5 });

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("symbol")) state.symbol = params.get("symbol").toUpperCase();
  if (params.get("range")) state.range = Number(params.get("range"));
  if (params.get("interval")) state.interval = params.get("interval");
}

function writeHash() {
  const hash = `#symbol=${state.symbol}&interval=${state.interval}&range=${state.range}`;
  history.replaceState(null, "", hash);
}

function buildIntervals() {
  const box = el("intervals");
  box.replaceChildren();
  if (!(state.interval in state.intervals)) state.interval = "1m";
  for (const name of Object.keys(state.intervals)) {
    const button = document.createElement("button");
    button.textContent = name;
    button.title = `one bar per ${INTERVAL_NAMES[name] || name}`;
    button.dataset.interval = name;
    button.classList.toggle("active", name === state.interval);
    button.addEventListener("click", () => {
      state.interval = name;
      for (const b of box.children) b.classList.toggle("active", b === button);
      buildRanges();
      writeHash();
      refresh();
    });
    box.appendChild(button);
  }
}

function buildRanges() {
  const box = el("ranges");
  box.replaceChildren();
  const { ranges, default_range: fallback } = state.intervals[state.interval];
  if (!ranges.includes(state.range)) state.range = fallback;
  for (const minutes of ranges) {
    const button = document.createElement("button");
    button.textContent = RANGE_LABELS[minutes] || `${minutes}m`;
    button.dataset.range = minutes;
    button.classList.toggle("active", minutes === state.range);
    button.addEventListener("click", () => {
      state.range = minutes;
      for (const b of box.children) b.classList.toggle("active", b === button);
      writeHash();
      refresh();
    });
    box.appendChild(button);
  }
}

async function loadSymbols() {
  const { symbols } = await getJSON("/api/symbols");
  const select = el("symbol");
  const names = symbols.map((s) => s.symbol);
  if (names.join() !== [...select.options].map((o) => o.value).join()) {
    select.replaceChildren(...names.map((name) => new Option(name, name)));
  }
  if (!names.includes(state.symbol)) state.symbol = names[0] || null;
  if (state.symbol) select.value = state.symbol;
  el("empty").hidden = names.length > 0;
  return names;
}

function setStatus(text, kind) {
  const status = el("status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

function renderTrend(trends) {
  const box = el("latest-trend");
  const c = trends && trends.columns;
  const last = c && c.trend.length ? c.trend.length - 1 : -1;
  box.className = "value";
  if (last < 0) {
    box.textContent = "–";
    box.title = state.interval === "1m" ? "no trends yet" : "trends are per minute: choose 1m";
    return;
  }
  const label = c.trend[last];
  box.textContent = { up: "▲ up", down: "▼ down", flat: "● flat" }[label] || label;
  box.classList.add(`trend-${label}`);
  box.dataset.trend = label;
  box.title = `at ${c.window_start[last].replace("T", " ").slice(0, 16)} UTC: SMA 5 `
    + `${price(c.sma_5[last])}, SMA 15 ${price(c.sma_15[last])}, SMA 60 ${price(c.sma_60[last])}`;
}

function renderLatest(latest) {
  const set = (id, text) => (el(id).textContent = text);
  set("latest-label", `Latest ${INTERVAL_NAMES[state.interval] || "bar"} (UTC)`);
  if (!latest) {
    for (const id of ["window", "close", "avg", "change", "volatility", "trades", "volume", "vwap"]) {
      set(`latest-${id}`, "–");
    }
    return;
  }
  set("latest-window", latest.window_start.replace("T", " ").slice(0, 16));
  el("latest-window").dataset.windowStart = latest.window_start;
  set("latest-close", price(latest.close));
  set("latest-avg", price(latest.avg_price));
  set("latest-change", `${fmt(latest.price_change_pct, { maximumFractionDigits: 4 })}%`);
  set("latest-volatility", sig(latest.volatility));
  set("latest-trades", fmt(latest.trade_count));
  set("latest-volume", sig(latest.volume));
  set("latest-vwap", price(latest.vwap));
}

function averageTraces(trends) {
  if (!trends || !trends.columns.window_start.length) return [];
  const t = trends.columns;
  return AVERAGES.map(([column, name, color, dash]) => ({
    type: "scatter", mode: "lines", name, x: t.window_start, y: t[column], xaxis: "x", yaxis: "y",
    line: { color, width: 1.3, dash }, connectgaps: false, meta: column,
  }));
}

function renderChart(data, trends) {
  const c = data.columns;
  const x = c.window_start;
  const averages = averageTraces(trends);
  const traces = [
    {
      type: "candlestick", name: `price (${data.interval} OHLC)`, x, open: c.open, high: c.high, low: c.low,
      close: c.close, xaxis: "x", yaxis: "y",
      increasing: { line: { color: "#16a34a" } }, decreasing: { line: { color: "#dc2626" } },
    },
    {
      type: "scatter", mode: "lines", name: "avg price", x, y: c.avg_price, xaxis: "x", yaxis: "y",
      line: { color: "#2563eb", width: 1.2, dash: "dot" },
    },
    ...averages,
    {
      type: "scatter", mode: "lines", name: "volatility (σ)", x, y: c.volatility, xaxis: "x2",
      yaxis: "y2", fill: "tozeroy", line: { color: "#9333ea", width: 1.2 }, connectgaps: false,
    },
    {
      type: "bar", name: "volume", x, y: c.volume, xaxis: "x3", yaxis: "y3",
      marker: { color: "#94a3b8" },
    },
    {
      type: "scatter", mode: "lines", name: "trades", x, y: c.trade_count, xaxis: "x3",
      yaxis: "y4", line: { color: "#ea580c", width: 1.2 },
    },
  ];
  const axis = { gridcolor: "#eef0f3", zeroline: false };
  const layout = {
    uirevision: `${data.symbol}/${data.interval}/${data.range_minutes}`,
    margin: { l: 70, r: 60, t: 36, b: 40 },
    showlegend: true,
    legend: { orientation: "h", x: 0, y: 1.07, font: { size: 12 } },
    hovermode: "x unified",
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    // Minutes: the chosen range, ending at the latest minute, moving on as minutes arrive.
    // Hours and days: fitted to their bars (the first may start before the range).
    xaxis: {
      ...axis, anchor: "y", type: "date", rangeslider: { visible: false }, showticklabels: false,
      ...(data.interval === "1m" ? { range: [data.since, data.until] } : { autorange: true }),
    },
    xaxis2: { ...axis, anchor: "y2", matches: "x", showticklabels: false },
    xaxis3: { ...axis, anchor: "y3", matches: "x", title: { text: "time (UTC)" } },
    yaxis: { ...axis, domain: [0.45, 1], title: { text: `${data.symbol} price` }, tickformat: "~r" },
    yaxis2: { ...axis, domain: [0.25, 0.41], title: { text: "volatility" }, rangemode: "tozero" },
    yaxis3: { ...axis, domain: [0, 0.21], title: { text: "volume" }, rangemode: "tozero" },
    yaxis4: {
      overlaying: "y3", side: "right", showgrid: false, zeroline: false, rangemode: "tozero",
      title: { text: "trades" },
    },
  };
  const chart = el("chart");
  Plotly.react(chart, traces, layout, { responsive: true, displaylogo: false });
  chart.dataset.points = String(x.length);
  chart.dataset.latest = x.length ? x[x.length - 1] : "";
  chart.dataset.interval = data.interval;
  chart.dataset.averagePoints = String(averages.length ? averages[0].x.length : 0);
}

function renderAlerts(alerts) {
  const list = el("alerts");
  el("alerts-count").textContent = alerts.length ? `(${alerts.length} latest)` : "";
  if (!alerts.length) {
    const none = document.createElement("li");
    none.className = "none";
    none.textContent = `No alerts for ${state.symbol || "any symbol"}.`;
    list.replaceChildren(none);
    return;
  }
  list.replaceChildren(
    ...alerts.map((alert) => {
      const item = document.createElement("li");
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = alert.window_start.replace("T", " ").slice(0, 16);
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = alert.kind.replace("_", " ");
      item.append(when, kind, document.createTextNode(alert.message));
      return item;
    }),
  );
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    await loadSymbols();
    if (!state.symbol) {
      setStatus("waiting for data", "live");
      return;
    }
    const query = `symbol=${encodeURIComponent(state.symbol)}`;
    const span = `range=${state.range}`;
    const minutes = state.interval === "1m";
    const [data, alerts, trends] = await Promise.all([
      getJSON(`/api/windows?${query}&interval=${state.interval}&${span}`),
      getJSON(`/api/alerts?${query}&limit=20`),
      minutes ? getJSON(`/api/trends?${query}&${span}`) : Promise.resolve(null),
    ]);
    renderChart(data, trends);
    renderLatest(data.latest);
    renderTrend(trends);
    renderAlerts(alerts.alerts);
    const now = new Date().toISOString().slice(11, 19);
    setStatus(`live · updated ${now} UTC`, "live");
  } catch (error) {
    setStatus(`cannot update: ${error.message}`, "error");
  } finally {
    state.busy = false;
  }
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    await refresh();
    schedule();
  }, state.refreshMs);
}

async function main() {
  readHash();
  try {
    const config = await getJSON("/api/config");
    state.refreshMs = Math.max(500, config.refresh_seconds * 1000);
    state.intervals = config.intervals;
    buildIntervals();
    buildRanges();
  } catch (error) {
    setStatus(`cannot reach the server: ${error.message}`, "error");
  }
  el("symbol").addEventListener("change", (event) => {
    state.symbol = event.target.value;
    writeHash();
    refresh();
  });
  await refresh();
  if (state.symbol) writeHash();
  schedule();
}

main();

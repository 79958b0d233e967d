// The overview's chart: how many accounts expire in each slice of the next 7 days, stacked
// per scope, the warning window shaded. Drawn by uPlot (vendor/uplot, MIT), loaded as the
// global `uPlot` before this module.

import { SCOPES, el, table } from "./common.js";

export const DAYS = 7;
export const BUCKET_HOURS = 6;
/// One colour per scope (Okabe-Ito: tells apart with most colour vision).
export const COLOURS = { sensor: "#0072b2", execution: "#e69f00", cli: "#009e73", webhook: "#cc79a7", admin: "#56b4e9" };
const WARN_FILL = "rgba(164, 0, 0, 0.16)";
const WARN_LINE = "#a40000";

/// Counts per scope and slice: `starts` are the slices' starts (seconds), `counts[scope]`
/// how many accounts' latest token expires in each. Revoked and already expired accounts are
/// not in it; neither is anything beyond the last slice.
export function expiryBuckets(accounts, now = Date.now() / 1000) {
  const slice = BUCKET_HOURS * 3600;
  const n = (DAYS * 24) / BUCKET_HOURS;
  const starts = Array.from({ length: n }, (_, i) => now + i * slice);
  const counts = {};
  for (const a of accounts) {
    if (a.status !== "active" || !a.expires_at) continue;
    const i = Math.floor((Date.parse(a.expires_at) / 1000 - now) / slice);
    if (i < 0 || i >= n) continue;
    (counts[a.scope] ??= new Array(n).fill(0))[i] += 1;
  }
  return { starts, counts, scopes: SCOPES.filter((s) => counts[s]) };
}

/// The numbers behind the chart, as a table (for screen readers, and to read exact counts).
function numbers({ starts, counts, scopes }, warn, now) {
  const rows = starts.map((start, i) => ({ start, i })).filter(({ i }) => scopes.some((s) => counts[s][i]));
  const iso = (secs) => new Date(secs * 1000).toISOString().replace(/:\d\d\.\d+Z$/, "Z");
  return table(["From (UTC)", "To", ...scopes, "In the warning window"], rows, ({ start, i }) => ({
    cells: [iso(start), iso(start + BUCKET_HOURS * 3600), ...scopes.map((s) => String(counts[s][i])),
      start < now + warn * 3600 ? "yes" : "no"],
    attrs: { "data-bucket": i },
  }));
}

/// "12-02 18:00": month, day and time in UTC, as the rest of the dashboard shows times.
const stamp = (secs) => new Date(secs * 1000).toISOString().slice(5, 16).replace("T", " ");

/// An axis tick: the day at midnight UTC ("Wed 12-02"), else the time ("12:00").
function tick(secs) {
  const d = new Date(secs * 1000);
  const time = d.toISOString().slice(11, 16);
  return time === "00:00" ? `${d.toUTCString().slice(0, 3)} ${d.toISOString().slice(5, 10)}` : time;
}

let plot = null;

/// Draws (or redraws) the chart into `container` and its numbers into `details`.
export function drawExpiries(container, details, accounts, warn) {
  const now = Date.now() / 1000;
  const data = expiryBuckets(accounts, now);
  details.replaceChildren(el("summary", "The numbers"), numbers(data, warn, now));
  if (plot) { plot.destroy(); plot = null; }
  container.replaceChildren();
  if (!data.scopes.length) {
    container.append(el("p", `Nothing expires in the next ${DAYS} days.`));
    return data;
  }
  // Stacked bars: each series is its own count plus those of the scopes after it, drawn
  // tallest first, so every scope shows as its own band and the top is the total.
  const stacked = data.scopes.map((_, k) => data.starts.map((__, i) =>
    data.scopes.slice(k).reduce((sum, s) => sum + data.counts[s][i], 0)));
  const middle = data.starts.map((t) => t + (BUCKET_HOURS * 3600) / 2);
  const warnEnd = now + warn * 3600;
  const opts = {
    width: Math.max(320, container.clientWidth),
    height: 260,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: {
      x: { time: true, range: () => [now, now + DAYS * 86400] },
      y: { range: (u, min, max) => [0, Math.max(1, max) * 1.15] },
    },
    axes: [
      { label: "expires (UTC)", space: 60, values: (u, ticks) => ticks.map(tick) },
      { label: "accounts", values: (u, ticks) => ticks.map((v) => (Number.isInteger(v) ? v : "")) },
    ],
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    series: [
      { label: "6 h from", value: (u, v) => (v == null ? "" : stamp(v - BUCKET_HOURS * 1800)) },
      ...data.scopes.map((scope) => ({
        label: scope,
        fill: COLOURS[scope],
        stroke: COLOURS[scope],
        width: 0,
        paths: uPlot.paths.bars({ size: [0.85, 80] }),
        points: { show: false },
        value: (u, v, si, i) => (i == null ? "" : String(data.counts[scope][i])),
      })),
    ],
    hooks: {
      drawClear: [(u) => {
        const ctx = u.ctx;
        const x0 = u.valToPos(now, "x", true);
        const x1 = Math.min(u.valToPos(warnEnd, "x", true), u.bbox.left + u.bbox.width);
        ctx.save();
        ctx.fillStyle = WARN_FILL;
        ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
        ctx.strokeStyle = WARN_LINE;
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.moveTo(x1, u.bbox.top);
        ctx.lineTo(x1, u.bbox.top + u.bbox.height);
        ctx.stroke();
        ctx.fillStyle = WARN_LINE;
        ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
        ctx.fillText(`warning window: ${warn} h`, x1 + 6 * devicePixelRatio, u.bbox.top + 14 * devicePixelRatio);
        ctx.restore();
      }],
    },
  };
  plot = new uPlot(opts, [middle, ...stacked], container);
  return data;
}

/// Keeps the chart as wide as its container.
export function fitChart(container) {
  if (plot) plot.setSize({ width: Math.max(320, container.clientWidth), height: 260 });
}

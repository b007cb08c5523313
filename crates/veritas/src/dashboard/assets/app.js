// Veritas dashboard: renders /api/snapshot and the /events stream. No dependencies.
// Everything from the server is inserted as text (never as HTML).
"use strict";

(function () {
  const HISTORY_MS = 300 * 1000;
  const STALE_MS = 5000;
  const COLORS = {};

  // ---------- small helpers ----------
  const $ = (sel) => document.querySelector(sel);
  const byTest = (id) => document.querySelector(`[data-testid="${id}"]`);

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "class") el.className = v;
        else if (k === "title") el.title = v;
        else el.setAttribute(k, v);
      }
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  function setText(id, text) {
    const el = byTest(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  const intFmt = new Intl.NumberFormat("en-US");
  const fmtInt = (v) => (v === null || v === undefined ? "—" : intFmt.format(Math.round(v)));
  function fmtRate(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    if (v >= 100) return intFmt.format(Math.round(v));
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(v === 0 ? 0 : 1);
  }
  const fmtPct = (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%");
  const fmtRatio = (v) => (v === null || v === undefined ? "—" : v.toFixed(3));
  function fmtUs(us) {
    if (us === null || us === undefined) return "—";
    if (us < 1000) return `${Math.round(us)} µs`;
    if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)} ms`;
    return `${(us / 1e6).toFixed(2)} s`;
  }
  function fmtBytes(b) {
    if (b === null || b === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return `${i === 0 ? b : b.toFixed(b < 10 ? 2 : 1)} ${units[i]}`;
  }
  function fmtDuration(secs) {
    secs = Math.max(0, Math.floor(secs));
    const d = Math.floor(secs / 86400), hh = Math.floor((secs % 86400) / 3600);
    const m = Math.floor((secs % 3600) / 60), s = secs % 60;
    const p = (n) => String(n).padStart(2, "0");
    if (d > 0) return `${d}d ${p(hh)}h ${p(m)}m`;
    if (hh > 0) return `${hh}h ${p(m)}m ${p(s)}s`;
    if (m > 0) return `${m}m ${p(s)}s`;
    return `${s}s`;
  }
  function fmtTime(ms) {
    const d = new Date(ms);
    if (isNaN(d)) return "—";
    const p = (n) => String(n).padStart(2, "0");
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  const fmtAmount = (v) =>
    typeof v === "number"
      ? v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })
      : "—";
  const prettyScenario = (s) => (s ? s.replace(/_/g, " ") : "");
  const shortId = (id) => (id && id.length > 14 ? id.slice(0, 6) + "…" + id.slice(-6) : id || "");

  function cssVar(name) {
    if (!COLORS[name]) COLORS[name] = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return COLORS[name];
  }

  // ---------- charts ----------
  const charts = new Map(); // canvas id -> { spec, series, tEnd, hover }

  function niceStep(max, target) {
    const raw = max / target;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const n = raw / mag;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
  }

  function drawChart(id) {
    const chart = charts.get(id);
    const canvas = document.getElementById(id);
    if (!chart || !canvas) return;
    const { spec, series, tEnd, hover } = chart;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, hgt = canvas.clientHeight;
    if (w === 0 || hgt === 0) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(hgt * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const pad = { l: 52, r: 10, t: 8, b: 22 };
    const pw = w - pad.l - pad.r, ph = hgt - pad.t - pad.b;
    const t0 = tEnd - HISTORY_MS;
    const xOf = (t) => pad.l + ((t - t0) / HISTORY_MS) * pw;
    const slot = pw / (HISTORY_MS / 1000);

    // y range: stacked layers add up, lines stand alone
    let max = 0;
    for (const b of series) {
      let stack = 0;
      for (const layer of spec.layers) {
        const v = layer.value(b);
        if (v === null || v === undefined) continue;
        if (layer.stack) { stack += v; max = Math.max(max, stack); } else max = Math.max(max, v);
      }
    }
    if (max <= 0) max = spec.emptyMax || 1;
    let yOf, ticks;
    if (spec.log) {
      // Decades from below the smallest value to above the largest, at least two of them.
      let min = Infinity;
      for (const b of series) for (const layer of spec.layers) {
        const v = layer.value(b);
        if (v > 0) min = Math.min(min, v);
      }
      if (!isFinite(min)) min = max / 100;
      const hiExp = Math.max(Math.ceil(Math.log10(max)), 1);
      const loExp = Math.min(Math.floor(Math.log10(min)), hiExp - 2);
      yOf = (v) => pad.t + ph - ((Math.log10(Math.max(v, 10 ** loExp)) - loExp) / (hiExp - loExp)) * ph;
      ticks = [];
      for (let e = loExp; e <= hiExp; e++) ticks.push(10 ** e);
    } else {
      const step = niceStep(max * 1.08, 4);
      const yMax = Math.ceil((max * 1.08) / step) * step;
      yOf = (v) => pad.t + ph - (v / yMax) * ph;
      ticks = [];
      for (let v = 0; v <= yMax + step / 2; v += step) ticks.push(v);
    }

    ctx.font = `11px ${getComputedStyle(document.body).fontFamily}`;
    ctx.textBaseline = "middle";
    ctx.lineWidth = 1;
    for (const v of ticks) {
      const y = Math.round(yOf(v)) + 0.5;
      ctx.strokeStyle = cssVar("--grid");
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(pad.l + pw, y); ctx.stroke();
      ctx.fillStyle = cssVar("--faint");
      ctx.textAlign = "right";
      ctx.fillText(spec.yFormat(v), pad.l - 8, y);
    }
    ctx.textBaseline = "alphabetic";
    ctx.textAlign = "center";
    for (let k = 5; k >= 0; k--) {
      const t = tEnd - k * 60000;
      const x = xOf(t);
      ctx.fillStyle = cssVar("--faint");
      ctx.fillText(k === 0 ? "now" : `−${k}m`, Math.min(x, pad.l + pw - 12), hgt - 6);
    }

    if (series.length === 0) {
      ctx.fillStyle = cssVar("--faint");
      ctx.textAlign = "center";
      ctx.fillText("waiting for the first complete second…", pad.l + pw / 2, pad.t + ph / 2);
      return;
    }

    // stacked layers, bottom first
    const base = new Map();
    for (const layer of spec.layers.filter((l) => l.stack)) {
      const color = cssVar(layer.color);
      if (layer.kind === "bars") {
        ctx.fillStyle = color;
        for (const b of series) {
          const v = layer.value(b) || 0;
          if (v <= 0) continue;
          const below = base.get(b.t_ms) || 0;
          const x = xOf(b.t_ms);
          const y1 = yOf(below + v), y0 = yOf(below);
          ctx.fillRect(x + 0.5, y1, Math.max(1, slot - 1), Math.max(1, y0 - y1));
          base.set(b.t_ms, below + v);
        }
      } else {
        // area
        ctx.beginPath();
        series.forEach((b, i) => {
          const v = (base.get(b.t_ms) || 0) + (layer.value(b) || 0);
          const x = xOf(b.t_ms + 500);
          if (i === 0) ctx.moveTo(x, yOf(v)); else ctx.lineTo(x, yOf(v));
        });
        const top = ctx;
        top.strokeStyle = color; top.lineWidth = 1.5; top.stroke();
        for (let i = series.length - 1; i >= 0; i--) {
          const b = series[i];
          ctx.lineTo(xOf(b.t_ms + 500), yOf(base.get(b.t_ms) || 0));
        }
        ctx.closePath();
        ctx.globalAlpha = 0.22; ctx.fillStyle = color; ctx.fill(); ctx.globalAlpha = 1;
        for (const b of series) base.set(b.t_ms, (base.get(b.t_ms) || 0) + (layer.value(b) || 0));
      }
    }
    // lines
    for (const layer of spec.layers.filter((l) => !l.stack)) {
      ctx.strokeStyle = cssVar(layer.color);
      ctx.lineWidth = layer.width || 1.75;
      ctx.lineJoin = "round";
      ctx.beginPath();
      let open = false;
      for (const b of series) {
        const v = layer.value(b);
        if (v === null || v === undefined) { open = false; continue; }
        const x = xOf(b.t_ms + 500), y = yOf(v);
        if (!open) { ctx.moveTo(x, y); open = true; } else ctx.lineTo(x, y);
      }
      ctx.stroke();
    }

    // hover: crosshair and values of the nearest second
    if (hover !== null && hover !== undefined) {
      const t = t0 + ((hover - pad.l) / pw) * HISTORY_MS;
      let best = null;
      for (const b of series) if (!best || Math.abs(b.t_ms + 500 - t) < Math.abs(best.t_ms + 500 - t)) best = b;
      if (best && Math.abs(best.t_ms + 500 - t) < 3000) {
        const x = Math.round(xOf(best.t_ms + 500)) + 0.5;
        ctx.strokeStyle = "rgba(229,236,244,0.35)"; ctx.lineWidth = 1;
        ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, pad.t + ph); ctx.stroke();
        const lines = [fmtTime(best.t_ms)].concat(
          spec.layers.map((l) => `${l.label}: ${spec.valueFormat(l.value(best))}`));
        ctx.font = `12px ${getComputedStyle(document.body).fontFamily}`;
        const tw = Math.max(...lines.map((s) => ctx.measureText(s).width)) + 16;
        const th = lines.length * 16 + 8;
        const bx = x + 10 + tw > pad.l + pw ? x - 10 - tw : x + 10;
        ctx.fillStyle = "rgba(12,18,26,0.94)"; ctx.strokeStyle = cssVar("--line");
        ctx.fillRect(bx, pad.t + 4, tw, th); ctx.strokeRect(bx + 0.5, pad.t + 4.5, tw - 1, th - 1);
        ctx.textAlign = "left";
        lines.forEach((s, i) => {
          ctx.fillStyle = i === 0 ? cssVar("--muted") : cssVar(spec.layers[i - 1].color);
          ctx.fillText(s, bx + 8, pad.t + 20 + i * 16);
        });
      }
    }
  }

  function setChart(id, spec, series, tEnd) {
    const prev = charts.get(id);
    charts.set(id, { spec, series, tEnd, hover: prev ? prev.hover : null });
    drawChart(id);
  }

  for (const id of ["throughput-chart", "flagged-chart", "latency-chart"]) {
    const canvas = document.getElementById(id);
    canvas.addEventListener("mousemove", (e) => {
      const c = charts.get(id);
      if (!c) return;
      c.hover = e.offsetX;
      drawChart(id);
    });
    canvas.addEventListener("mouseleave", () => {
      const c = charts.get(id);
      if (!c) return;
      c.hover = null;
      drawChart(id);
    });
  }
  window.addEventListener("resize", () => { for (const id of charts.keys()) drawChart(id); });

  const rateAxis = (v) => (v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : `${+v.toFixed(1)}`);
  const CHARTS = {
    "throughput-chart": {
      yFormat: rateAxis,
      valueFormat: (v) => `${fmtRate(v)}/s`,
      layers: [
        { label: "decisions", color: "--approve", stack: true, kind: "area", value: (b) => b.approve + b.review + b.decline },
        { label: "events in", color: "--in", value: (b) => b.events_in },
      ],
    },
    "flagged-chart": {
      yFormat: rateAxis,
      valueFormat: (v) => `${fmtInt(v)}/s`,
      emptyMax: 4,
      layers: [
        { label: "decline", color: "--decline", stack: true, kind: "bars", value: (b) => b.decline },
        { label: "review", color: "--review", stack: true, kind: "bars", value: (b) => b.review },
      ],
    },
    "latency-chart": {
      log: true,
      yFormat: (v) => fmtUs(v).replace(".00 ", " ").replace(".0 ", " "),
      valueFormat: fmtUs,
      emptyMax: 1000,
      layers: [
        { label: "p99", color: "--p99", value: (b) => b.p99_us },
        { label: "p50", color: "--p50", value: (b) => b.p50_us },
      ],
    },
  };

  // ---------- panels ----------
  function renderHeader(s) {
    const info = s.info || {};
    setText("mode", info.mode === "external" ? "External Kafka" : "Embedded broker");
    setText("bootstrap", info.bootstrap_servers || "—");
    setText("model-version", info.model_version || "—");
    setText("uptime", fmtDuration(s.uptime_secs));
  }

  function renderKpis(s) {
    const r = s.rates, t = s.totals, q = s.quality, info = s.info || {};
    setText("events-per-sec", fmtRate(r.events_in));
    setText("target-rate", info.target_rate ? `target ${fmtRate(info.target_rate)}/s` : `${fmtInt(t.produced)} produced`);
    setText("decisions-per-sec", fmtRate(r.decisions));
    setText("approve-per-sec", fmtRate(r.approve));
    setText("review-per-sec", fmtRate(r.review));
    setText("decline-per-sec", fmtRate(r.decline));
    setText("precision", fmtPct(q.decline.precision));
    setText("recall", fmtPct(q.decline.recall));
    setText("f1", fmtRatio(q.decline.f1));
    setText("precision-flagged", fmtPct(q.flagged.precision));
    setText("recall-flagged", fmtPct(q.flagged.recall));
    setText("f1-flagged", fmtRatio(q.flagged.f1));
    setText("latency-p99", fmtUs(s.latency.window.p99_us));
    setText("latency-p50", fmtUs(s.latency.window.p50_us));
    setText("total-processed", fmtInt(t.decisions));
    setText("total-flagged", t.decisions
      ? `${fmtInt(t.decline + t.review)} flagged · ${((100 * (t.decline + t.review)) / t.decisions).toFixed(2)}%`
      : "—");
    setText("dlq-count", fmtInt(t.dlq));
    setText("dlq-topic", info.dlq_topic ? `→ ${info.dlq_topic}` : " ");
    byTest("dlq-count").closest(".kpi").dataset.nonzero = String(t.dlq > 0);
  }

  function renderCharts(s) {
    const series = s.series || [];
    const tEnd = series.length ? series[series.length - 1].t_ms + 1000 : s.generated_at_ms;
    for (const [id, spec] of Object.entries(CHARTS)) setChart(id, spec, series, tEnd);
  }

  function renderLag(s) {
    const box = $("#lag-bars");
    const lag = s.lag || [];
    const perSec = Math.max(s.rates.decisions, 1e-9);
    setText("total-lag", lag.length ? `total ${fmtInt(s.total_lag)}` : "—");
    if (!lag.length) {
      if (!box.querySelector(".empty")) box.replaceChildren(h("p", { class: "empty" }, "No lag reported yet."));
      return;
    }
    const max = Math.max(10, ...lag.map((l) => l.lag));
    const partitions = Math.max(1, lag.length);
    box.replaceChildren(...lag.map((l) => {
      // Seconds behind at this partition's share of the decision rate.
      const behind = Math.max(0, l.lag) / (perSec / partitions);
      const cls = behind < 2 ? "fill-ok" : behind < 10 ? "fill-warn" : "fill-bad";
      const fill = h("span", { class: cls });
      fill.style.width = `${Math.max(0.5, (Math.max(0, l.lag) / max) * 100)}%`;
      return h("div", { class: "bar-row lag-row", "data-partition": l.partition },
        h("span", { class: "k" }, `p${l.partition}`),
        h("div", { class: "track" }, fill),
        h("span", { class: "v" }, fmtInt(l.lag), " ",
          h("span", { class: "muted" }, s.rates.decisions > 0 ? `≈${behind < 10 ? behind.toFixed(1) : Math.round(behind)} s` : "")));
    }));
  }

  function renderScenarios(s) {
    const box = $("#scenarios");
    const rows = (s.scenarios || []).slice().sort((a, b) => b.frauds - a.frauds);
    if (!rows.length) {
      if (!box.querySelector(".empty")) box.replaceChildren(h("p", { class: "empty" }, "No labelled fraud yet."));
      return;
    }
    const max = Math.max(...rows.map((r) => r.frauds));
    box.replaceChildren(...rows.map((r) => {
      const track = h("div", { class: "track", title: `${r.declined} declined, ${r.reviewed} reviewed, ${r.missed} missed` });
      for (const [k, cls] of [["declined", "seg-declined"], ["reviewed", "seg-reviewed"], ["missed", "seg-missed"]]) {
        if (!r[k]) continue;
        const seg = h("span", { class: cls });
        seg.style.width = `${(r[k] / max) * 100}%`;
        track.append(seg);
      }
      const caught = r.frauds ? (r.declined + r.reviewed) / r.frauds : 0;
      return h("div", { class: "bar-row scenario-row", "data-scenario": r.scenario },
        h("span", { class: "k", title: r.scenario }, prettyScenario(r.scenario)),
        track,
        h("span", { class: "v" }, `${(caught * 100).toFixed(0)}% caught `,
          h("span", { class: "muted" }, `of ${fmtInt(r.frauds)}`)));
    }));
  }

  const expandedTopics = new Set();
  function renderBroker(s) {
    const body = $("#broker-topics tbody");
    const b = s.broker;
    if (!b) {
      setText("broker-updated", "not reported");
      body.replaceChildren(h("tr", null, h("td", { colspan: 5, class: "empty" }, "No broker data yet.")));
      return;
    }
    const age = Math.max(0, (s.generated_at_ms - b.updated_at_ms) / 1000);
    setText("broker-updated", age < 2 ? "live" : `updated ${fmtDuration(age)} ago`);
    const sum = (xs) => xs.reduce((a, x) => a + x, 0);
    const rows = [];
    for (const t of b.topics) {
      const ends = t.partitions.map((p) => p.log_end_offset);
      const sizes = t.partitions.map((p) => p.size_bytes);
      const open = expandedTopics.has(t.name);
      const toggle = h("button", { class: "expander", type: "button", "aria-expanded": String(open), title: "show partitions" }, open ? "▾" : "▸");
      toggle.addEventListener("click", () => {
        if (expandedTopics.has(t.name)) expandedTopics.delete(t.name); else expandedTopics.add(t.name);
        renderBroker(s);
      });
      // Per-partition log-end offsets as a tiny bar chart: partition balance at a glance.
      const maxEnd = Math.max(1, ...ends);
      const spark = h("span", { class: "spark", title: ends.map((e, i) => `p${t.partitions[i].partition}: ${fmtInt(e)}`).join("\n") });
      for (const e of ends.slice(0, 48)) {
        const bar = h("span");
        bar.style.height = `${Math.max(8, (e / maxEnd) * 100)}%`;
        spark.append(bar);
      }
      rows.push(h("tr", { class: "topic-row", "data-topic": t.name },
        h("td", { class: "topic", title: t.name }, toggle, h("span", { class: "name" }, t.name)),
        h("td", { class: "r" }, t.partitions.length),
        h("td", { class: "r" }, fmtInt(sum(ends))),
        h("td", null, spark),
        h("td", { class: "r" }, sizes.some((x) => x === null || x === undefined) ? "—" : fmtBytes(sum(sizes)))));
      if (!open) continue;
      for (const p of t.partitions) {
        rows.push(h("tr", { class: "partition-row", "data-topic": t.name, "data-partition": p.partition },
          h("td", { class: "sub" }, `partition ${p.partition}`),
          h("td", { class: "r sub" }, `from ${fmtInt(p.log_start_offset)}`),
          h("td", { class: "r" }, fmtInt(p.log_end_offset)),
          h("td"),
          h("td", { class: "r" }, fmtBytes(p.size_bytes))));
      }
    }
    body.replaceChildren(...rows);
  }

  function verdictColor(v) {
    return v === "DECLINE" ? cssVar("--decline") : v === "REVIEW" ? cssVar("--review") : cssVar("--approve");
  }

  function truthCell(d) {
    const labels = { caught: "✓ caught", missed: "✗ missed", false_positive: "false positive", unlabelled: "unlabelled", correct_approve: "legitimate" };
    return h("td", { class: `truth ${d.outcome}` }, labels[d.outcome] || d.outcome,
      d.scenario ? h("span", { class: "sub" }, prettyScenario(d.scenario)) : null);
  }

  function reasonsCell(reasons) {
    const shown = reasons.slice(0, 2);
    return h("td", { class: "reasons", title: reasons.join("\n") },
      h("span", { class: "txt" }, shown.join(" · "),
        reasons.length > 2 ? h("span", { class: "more" }, ` +${reasons.length - 2}`) : null));
  }

  let seenRecent = null;
  function renderRecent(s) {
    const body = $("#recent-decisions tbody");
    const recent = s.recent || [];
    $("#recent-empty").hidden = recent.length > 0;
    const seen = new Set();
    body.replaceChildren(...recent.map((d) => {
      seen.add(d.transaction_id);
      const fresh = seenRecent && !seenRecent.has(d.transaction_id);
      const meter = h("span", { class: "meter" }, h("span"));
      meter.firstChild.style.width = `${Math.round(Math.min(1, Math.max(0, d.score)) * 100)}%`;
      meter.firstChild.style.background = verdictColor(d.verdict);
      return h("tr", { class: `${d.outcome}${fresh ? " new" : ""}`, "data-verdict": d.verdict, "data-outcome": d.outcome },
        h("td", { class: "nowrap num" }, fmtTime(d.event_time_ms)),
        h("td", { class: "mono", title: `transaction ${d.transaction_id}` }, d.card,
          h("span", { class: "txid" }, shortId(d.transaction_id))),
        h("td", { class: "merchant", title: d.merchant || "" }, d.merchant || "—"),
        h("td", { class: "r" }, fmtAmount(d.amount)),
        h("td", { class: "r" }, h("span", { class: "score" }, meter, d.score.toFixed(3))),
        h("td", null, h("span", { class: `pill ${d.verdict}` }, d.verdict)),
        reasonsCell(d.reasons || []),
        truthCell(d));
    }));
    seenRecent = seen;
  }

  function renderMissed(s) {
    const list = $("#missed-fraud");
    const missed = s.missed || [];
    $("#missed-empty").hidden = missed.length > 0;
    list.replaceChildren(...missed.map((d) =>
      h("li", { "data-transaction": d.transaction_id },
        h("div", { class: "top" },
          h("span", { class: "amt" }, fmtAmount(d.amount)),
          h("span", { class: "scn" }, prettyScenario(d.scenario) || "fraud"),
          h("span", { class: "when" }, fmtTime(d.event_time_ms))),
        h("div", { class: "detail mono" }, `${d.card} · score ${d.score.toFixed(3)}`),
        h("div", { class: "detail" }, d.merchant || "", d.reasons && d.reasons.length ? ` · ${d.reasons[0]}` : ""))));
  }

  let rendered = 0;
  function render(s) {
    renderHeader(s);
    renderKpis(s);
    renderCharts(s);
    renderLag(s);
    renderScenarios(s);
    renderBroker(s);
    renderRecent(s);
    renderMissed(s);
    rendered += 1;
    document.body.dataset.snapshots = String(rendered);
  }

  function safeRender(s) {
    try { render(s); } catch (e) { console.error("render failed", e); }
  }

  // ---------- live connection ----------
  const conn = byTest("connection");
  function setConn(state, label) {
    conn.dataset.state = state;
    conn.querySelector(".conn-label").textContent = label;
  }

  let source = null, lastMessage = 0, backoff = 1000;
  function connect() {
    if (source) source.close();
    source = new EventSource("/events");
    source.addEventListener("snapshot", (e) => {
      lastMessage = Date.now();
      backoff = 1000;
      setConn("live", "live");
      let s;
      try { s = JSON.parse(e.data); } catch (err) { console.error("bad snapshot", err); return; }
      safeRender(s);
    });
    source.addEventListener("open", () => { lastMessage = Date.now(); });
    source.addEventListener("error", () => {
      setConn("reconnecting", "reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. the server answered with an error): retry ourselves.
        source.close();
        source = null;
        setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 15000);
      }
    });
  }

  setInterval(() => {
    if (source && lastMessage && Date.now() - lastMessage > STALE_MS) {
      setConn("stale", "no data — reconnecting…");
      lastMessage = Date.now();
      connect();
    }
  }, 1000);

  fetch("/api/snapshot", { cache: "no-store" })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((s) => { if (rendered === 0) safeRender(s); })
    .catch((e) => console.warn("initial snapshot:", e));
  connect();
})();

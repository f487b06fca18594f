// perfgate dashboard: renders the page named by <body data-page> from the globals its data
// scripts set (PG_INDEX, PG_CASE + PG_RUNS, PG_SWEEPS). Everything from the data goes into the
// DOM as text (textContent / attribute values), never as markup.
(function () {
  "use strict";
  var errors = [];
  function record(msg) {
    errors.push(String(msg));
    if (document.body) document.body.setAttribute("data-errors", errors.join(" | "));
  }
  window.addEventListener("error", function (e) {
    record((e.message || "error") + " at " + (e.filename || "?") + ":" + (e.lineno || 0));
  });
  var consoleError = console.error;
  console.error = function () {
    record(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };

  var SVGNS = "http://www.w3.org/2000/svg";
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    set(e, attrs);
    add(e, kids);
    return e;
  }
  function sv(tag, attrs, kids) {
    var e = document.createElementNS(SVGNS, tag);
    set(e, attrs);
    add(e, kids);
    return e;
  }
  function set(e, attrs) {
    for (var k in attrs || {}) {
      if (attrs[k] === null || attrs[k] === undefined) continue;
      if (k === "text") e.textContent = attrs[k];
      else if (k === "on") for (var ev in attrs.on) e.addEventListener(ev, attrs.on[ev]);
      else e.setAttribute(k, attrs[k]);
    }
  }
  function add(e, kids) {
    if (kids === null || kids === undefined) return;
    if (!Array.isArray(kids)) kids = [kids];
    kids.forEach(function (k) {
      if (k === null || k === undefined) return;
      e.appendChild(typeof k === "string" || typeof k === "number" ? document.createTextNode(String(k)) : k);
    });
  }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    var a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 100) return v.toFixed(1);
    if (a >= 10) return v.toFixed(2);
    return v.toPrecision(3);
  }
  // An axis label with as many decimals as the spacing between labels needs, so that close
  // values (a flat series) do not all print alike.
  function tick(v, step) {
    var decimals = step > 0 ? Math.max(0, Math.min(6, 1 - Math.floor(Math.log10(step)))) : 0;
    return Math.abs(v) >= 1000 && decimals === 0 ? v.toFixed(0) : v.toFixed(decimals);
  }
  function pct(v) {
    if (v === null || v === undefined) return "–";
    return (v >= 0 ? "+" : "") + v.toFixed(2) + "%";
  }
  function pill(status) { return el("span", { class: "pill " + status, text: status.replace("_", " ") }); }
  function runs() { return window.PG_RUNS || {}; }
  function day(night) {
    var r = runs()[night];
    return r && r.started ? r.started.slice(0, 10) : "#" + night;
  }
  function kv(pairs) {
    var dl = el("dl", { class: "kv" });
    pairs.forEach(function (p) {
      if (p[1] === null || p[1] === undefined || p[1] === "") return;
      dl.appendChild(el("dt", { text: p[0] }));
      dl.appendChild(el("dd", null, p[1]));
    });
    return dl;
  }
  function link(url) {
    return /^https?:\/\//.test(url) ? el("a", { href: url, text: url }) : el("span", { text: url });
  }

  // ---- charts ------------------------------------------------------------------------------
  // A time series chart: x = night, y = value. opts: {w, h, series, band, selected, onPick}.
  function chart(s, opts) {
    var w = opts.w, h = opts.h, L = 58, R = 12, T = 10, B = 24;
    var pts = s.points.filter(function (p) { return p[1] !== null; });
    var svg = sv("svg", { class: "chart", viewBox: "0 0 " + w + " " + h, role: "img",
      "aria-label": s.metric + " over nights", "data-metric": s.metric });
    if (pts.length === 0) {
      svg.appendChild(sv("text", { x: w / 2, y: h / 2, "text-anchor": "middle", text: "no values" }));
      return svg;
    }
    var nights = s.points.map(function (p) { return p[0]; });
    var x0 = Math.min.apply(null, nights), x1 = Math.max.apply(null, nights);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    var ys = [];
    pts.forEach(function (p) { ys.push(p[1]); if (p[2] !== null && opts.full) ys.push(p[2]); });
    (opts.full && s.band ? s.band : []).forEach(function (b) { ys.push(b[1], b[2]); });
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    var pad = (y1 - y0) * 0.08 || Math.abs(y1) * 0.05 || 1;
    y0 -= pad; y1 += pad;
    function X(n) { return L + (n - x0) / (x1 - x0) * (w - L - R); }
    function Y(v) { return T + (y1 - v) / (y1 - y0) * (h - T - B); }
    for (var i = 0; i <= 4; i++) {
      var v = y0 + (y1 - y0) * i / 4, y = Y(v);
      svg.appendChild(sv("line", { class: "gridline", x1: L, x2: w - R, y1: y, y2: y }));
      svg.appendChild(sv("text", { x: L - 6, y: y + 3, "text-anchor": "end", text: tick(v, (y1 - y0) / 4) }));
    }
    svg.appendChild(sv("line", { class: "axis", x1: L, x2: L, y1: T, y2: h - B }));
    svg.appendChild(sv("line", { class: "axis", x1: L, x2: w - R, y1: h - B, y2: h - B }));
    var ticks = Math.max(2, Math.min(Math.floor((w - L - R) / 110), nights.length));
    var tickNights = [];
    for (var t = 0; t < ticks; t++) tickNights.push(nights[Math.round(t * (nights.length - 1) / Math.max(1, ticks - 1))]);
    // Dates label the nights unless two ticks would read the same (several runs a day):
    // then the night numbers do.
    var labels = tickNights.map(day);
    if (labels.some(function (l, i) { return labels.indexOf(l) !== i; })) labels = tickNights.map(function (n) { return "#" + n; });
    tickNights.forEach(function (n, t) {
      var anchor = t === 0 ? "start" : t === ticks - 1 ? "end" : "middle";
      svg.appendChild(sv("text", { x: X(n), y: h - 8, "text-anchor": anchor, text: labels[t] }));
    });
    if (opts.full && s.band && s.band.length) {
      var up = s.band.map(function (b) { return X(b[0]).toFixed(1) + "," + Y(b[2]).toFixed(1); });
      var down = s.band.slice().reverse().map(function (b) { return X(b[0]).toFixed(1) + "," + Y(b[1]).toFixed(1); });
      svg.appendChild(sv("path", { class: "band", d: "M" + up.join("L") + "L" + down.join("L") + "Z" }, sv("title", { text: "noise band: median ± 3·1.4826·MAD of the previous 20 nights" })));
    }
    function line(cls, idx) {
      var d = "", pen = "M";
      s.points.forEach(function (p) {
        if (p[idx] === null) { pen = "M"; return; }
        d += pen + X(p[0]).toFixed(1) + "," + Y(p[idx]).toFixed(1);
        pen = "L";
      });
      if (d) svg.appendChild(sv("path", { class: cls, d: d }));
    }
    if (opts.full) line("baseline", 2);
    line("value", 1);
    (s.acked || []).forEach(function (a) {
      if (a[0] < x0 || a[0] > x1) return;
      svg.appendChild(sv("line", { class: "acked", x1: X(a[0]), x2: X(a[0]), y1: T, y2: h - B },
        sv("title", { text: "acknowledged change point, night " + a[0] + ": " + a[1] + " (" + a[2] + ")" })));
    });
    (s.detected || []).forEach(function (d) {
      svg.appendChild(sv("line", { class: "detected", x1: X(d[0]), x2: X(d[0]), y1: T, y2: h - B },
        sv("title", { text: "detected change point, night " + d[0] + ": " + pct(d[2]) + " (p=" + d[1].toPrecision(2) + ")" })));
    });
    if (opts.selected !== undefined && opts.selected >= x0 && opts.selected <= x1) {
      svg.appendChild(sv("line", { class: "selected", x1: X(opts.selected), x2: X(opts.selected), y1: T, y2: h - B }));
    }
    var many = s.points.length > 120;
    s.points.forEach(function (p) {
      if (p[1] === null) return;
      var title = day(p[0]) + " (night " + p[0] + "): " + fmt(p[1]) + " " + (s.unit || "") + (p[3] ? " " + p[3] : "");
      if (p[3] === "FAIL") {
        svg.appendChild(sv("circle", { class: "fail-mark", cx: X(p[0]), cy: Y(p[1]), r: 4, "data-night": p[0] }, sv("title", { text: title })));
      } else if (!many || (p[3] && p[3] !== "PASS")) {
        svg.appendChild(sv("circle", { class: "dot " + (p[3] || ""), cx: X(p[0]), cy: Y(p[1]), r: opts.full ? 2.5 : 1.5 }, sv("title", { text: title })));
      }
    });
    if (opts.onPick) {
      var hit = sv("rect", { class: "hit", x: L, y: T, width: w - L - R, height: h - T - B });
      hit.addEventListener("click", function (ev) {
        var box = svg.getBoundingClientRect();
        var nx = x0 + ((ev.clientX - box.left) * w / box.width - L) / (w - L - R) * (x1 - x0);
        var best = nights[0];
        nights.forEach(function (n) { if (Math.abs(n - nx) < Math.abs(best - nx)) best = n; });
        opts.onPick(best);
      });
      svg.appendChild(hit);
    }
    return svg;
  }

  // ---- index -------------------------------------------------------------------------------
  function renderIndex(app) {
    var D = window.PG_INDEX;
    app.textContent = "";
    if (!D) { app.appendChild(el("p", { class: "empty", text: "data/index.js is missing" })); return; }
    app.appendChild(el("h1", { text: "Nightly performance" }));
    app.appendChild(el("p", { class: "muted" }, ["History ", el("span", { class: "mono", text: D.source }),
      " · " + D.runs + " runs shown" + (D.runs ? " (nights " + D.first_night + "–" + D.last_night + ")" : "") + " · generated " + D.generated]));
    if (!D.runs) {
      app.appendChild(el("p", { class: "empty", id: "empty", text: "no runs in " + D.source + " yet" }));
      return;
    }
    var cards = el("div", { class: "cards", id: "prefixes" });
    D.prefixes.forEach(function (p) {
      var counts = el("div", { class: "counts" });
      D.order.concat(["MEASURED", "NOT_RUN"]).forEach(function (s) {
        if (p.counts[s]) counts.appendChild(el("span", null, [pill(s), " " + p.counts[s]]));
      });
      cards.appendChild(el("div", { class: "card prefix-card" }, [
        el("h3", { text: p.prefix }),
        kv([["last night", "#" + p.night + " · " + p.started], ["run", el("span", { class: "mono", text: p.run_id })],
          ["host", p.host], ["revision", p.revision ? el("span", { class: "mono", text: p.revision.slice(0, 12) }) : null],
          ["branch", p.branch], ["build", p.build_url ? link(p.build_url) : null],
          ["cases", p.cases ? String(p.cases) : "no metrics recorded in this run"]]),
        counts]));
    });
    app.appendChild(cards);
    var rows = D.rows;
    function options(key) {
      var seen = {};
      rows.forEach(function (r) { seen[r[key]] = (seen[r[key]] || 0) + 1; });
      return Object.keys(seen).sort();
    }
    var filters = el("div", { class: "filters", id: "filters" });
    var state = {};
    var fields = [["model", "Model"], ["prefix", "GPU"], ["backend", "Backend"], ["precision", "Precision"], ["status", "Status"]];
    var tbody = el("tbody");
    var shown = el("span", { class: "muted", id: "shown" });
    function apply() {
      var q = search.value.toLowerCase(), n = 0;
      Array.prototype.forEach.call(tbody.children, function (tr, i) {
        var r = rows[i];
        var ok = fields.every(function (f) { return !state[f[0]] || r[f[0]] === state[f[0]]; }) &&
          (!q || r.label.toLowerCase().indexOf(q) >= 0);
        tr.className = ok ? "" : "hidden";
        if (ok) n++;
      });
      shown.textContent = "showing " + n + " of " + rows.length + " cases";
    }
    fields.forEach(function (f) {
      var sel = el("select", { id: "f-" + f[0], "data-filter": f[0] }, el("option", { value: "", text: "all" }));
      options(f[0]).forEach(function (o) { sel.appendChild(el("option", { value: o, text: o })); });
      sel.addEventListener("change", function () { state[f[0]] = sel.value; apply(); });
      filters.appendChild(el("label", null, [f[1], sel]));
    });
    var search = el("input", { id: "f-search", type: "search", placeholder: "part of the name" });
    search.addEventListener("input", apply);
    filters.appendChild(el("label", null, ["Search", search]));
    filters.appendChild(shown);
    app.appendChild(filters);
    rows.forEach(function (r) {
      var m = el("td", { class: "metrics-cell" });
      r.metrics.forEach(function (x) {
        m.appendChild(el("span", { title: x[0] + (x[4] ? " " + x[4] : "") }, [x[0] + " " + fmt(x[1]) + " " + (x[2] || "") + " ",
          el("b", { class: x[4] === "FAIL" ? "neg" : x[4] === "IMPROVED" ? "pos" : "", text: pct(x[3]) })]));
      });
      tbody.appendChild(el("tr", { "data-status": r.status, "data-case": r.case }, [
        el("td", null, pill(r.status)),
        el("td", { class: "case" }, [el("a", { href: "case/" + r.case + ".html", text: r.label }),
          r.why ? el("div", { class: "why", text: r.why }) : null,
          r.status === "NOT_RUN" ? el("div", { class: "why", text: "not in the last run; last seen " + day(r.night) + " (night " + r.night + ")" }) : null]),
        el("td", { text: r.prefix }), el("td", { text: r.model }), el("td", { text: r.backend }),
        el("td", { text: r.precision }), m]));
    });
    app.appendChild(el("div", { class: "table-wrap" }, el("table", { id: "cases" }, [
      el("thead", null, el("tr", null, ["status", "case", "GPU", "model", "backend", "precision", "gated metrics (value, change)"].map(function (h) { return el("th", { text: h }); }))),
      tbody])));
    apply();
  }

  // ---- case page ---------------------------------------------------------------------------
  function renderCase(app) {
    var C = window.PG_CASE;
    app.textContent = "";
    if (!C) { app.appendChild(el("p", { class: "empty", text: "this case's data file is missing" })); return; }
    app.appendChild(el("h1", { text: C.label }));
    app.appendChild(kv([["GPU / prefix", C.prefix], ["model", C.model], ["backend", C.backend], ["precision", C.precision],
      ["sweep point", C.knob], ["test id", C.test_id ? el("span", { class: "mono", text: C.test_id }) : "(no measurements stored)"],
      ["case", C.case_dir], ["key", el("span", { class: "mono", text: C.key })]]));
    var nights = {};
    C.series.forEach(function (s) { s.points.forEach(function (p) { nights[p[0]] = true; }); });
    var nightList = Object.keys(nights).map(Number).sort(function (a, b) { return b - a; });
    var selected = C.last_night;
    var chartsBox = el("div", { id: "charts" });
    var drill = el("div", { class: "drill", id: "drill" });
    app.appendChild(el("div", { class: "legend" }, [
      el("span", null, [el("i", { style: "border-color:#1570ef" }), "value (mean of the night's repetitions)"]),
      el("span", null, [el("i", { style: "border-color:#344054;border-top-style:dashed" }), "baseline compared against"]),
      el("span", null, [el("i", { style: "border-top:8px solid rgba(21,112,239,.18)" }), "noise band (median ± 3 robust SD of the previous 20 nights)"]),
      el("span", null, [el("i", { style: "border-color:#d92d20;border-top-width:6px;width:6px;border-radius:3px" }), "FAIL night"]),
      el("span", null, [el("i", { style: "border-color:#7a5af8" }), "acknowledged change point"]),
      el("span", null, [el("i", { style: "border-color:#f79009;border-top-style:dashed" }), "detected change point"])]));
    app.appendChild(chartsBox);
    app.appendChild(el("h2", { text: "Night drill-down" }));
    app.appendChild(drill);
    function pick(n) { selected = n; draw(); }
    function draw() {
      chartsBox.textContent = "";
      var gated = C.series.filter(function (s) { return s.gated; });
      var other = C.series.filter(function (s) { return !s.gated && !s.telemetry; });
      var tele = C.series.filter(function (s) { return !s.gated && s.telemetry; });
      chartsBox.appendChild(el("h2", { text: "Gated metrics" }));
      if (!gated.length) chartsBox.appendChild(el("p", { class: "muted", text: "no gated metric stored for this case" }));
      gated.forEach(function (s) {
        chartsBox.appendChild(el("div", { class: "chart-card" }, [
          el("h3", null, [s.metric + " ", el("span", { class: "muted", text: "(" + s.step + ", " + (s.unit || "no unit") + ", " + s.direction + " is better)" })]),
          chart(s, { w: 1100, h: 260, full: true, selected: selected, onPick: pick })]));
      });
      [["Other metrics (reported, not gated)", other], ["GPU telemetry (energy, power, clocks, temperatures)", tele]].forEach(function (g) {
        if (!g[1].length) return;
        chartsBox.appendChild(el("h2", { text: g[0] }));
        var grid = el("div", { class: "grid" });
        g[1].forEach(function (s) {
          grid.appendChild(el("div", { class: "chart-card" }, [
            el("h3", null, [s.metric + " ", el("span", { class: "muted", text: "(" + s.step + ", " + (s.unit || "no unit") + ")" })]),
            chart(s, { w: 420, h: 150, full: false, selected: selected, onPick: pick })]));
        });
        chartsBox.appendChild(grid);
      });
      drawDrill();
    }
    function drawDrill() {
      drill.textContent = "";
      var sel = el("select", { id: "night" });
      nightList.forEach(function (n) {
        var o = el("option", { value: n, text: day(n) + " · night " + n });
        if (n === selected) o.selected = true;
        sel.appendChild(o);
      });
      sel.addEventListener("change", function () { pick(Number(sel.value)); });
      drill.appendChild(el("p", null, ["Night ", sel, el("span", { class: "muted", text: "  (or click a chart)" })]));
      var r = runs()[selected];
      if (r) {
        drill.appendChild(kv([["run id", el("span", { class: "mono", text: r.run_id })], ["started", r.started], ["ended", r.ended || "(not recorded: still running, or it died)"],
          ["host", r.host], ["test prefix", r.test_prefix], ["revision", r.revision ? el("span", { class: "mono", text: r.revision }) : "(not recorded)"],
          ["branch", r.branch], ["build", r.build_url ? link(r.build_url) : null], ["imported from", r.imported_from],
          ["fingerprint", el("span", { class: "mono", text: r.fingerprint })]]));
        drill.appendChild(el("p", { class: "note", text: "The benchmark command and its log path are not stored in the history: they are in results.jsonl" +
          (r.imported_from ? " under " + r.imported_from : " in this run's output directory") + " (lines with run_id " + r.run_id + ")." }));
      } else {
        drill.appendChild(el("p", { class: "muted", text: "run of night " + selected + " not in the runs shown" }));
      }
      var tb = el("tbody");
      var notes = [];
      C.series.forEach(function (s) {
        var p = s.points.filter(function (q) { return q[0] === selected; })[0];
        if (!p) return;
        tb.appendChild(el("tr", { "data-metric": s.metric }, [
          el("td", { text: s.metric + (s.gated ? " *" : "") }), el("td", { text: s.step }),
          el("td", { class: "num", text: fmt(p[1]) }), el("td", { text: s.unit || "" }), el("td", { class: "num", text: fmt(p[2]) }),
          el("td", { class: "num", text: pct(p[4]) }), el("td", { class: "num", text: p[5] === null ? "–" : p[5].toFixed(2) + "%" }),
          el("td", null, p[3] ? pill(p[3]) : el("span", { class: "muted", text: "no verdict" })),
          el("td", { class: "num", text: p[6] === null ? "–" : p[6] + "/" + p[7] })]));
        var n = s.notes && s.notes[selected];
        if (n) notes.push([s.metric, n]);
      });
      drill.appendChild(el("div", { class: "table-wrap" }, el("table", { id: "night-metrics" }, [
        el("thead", null, el("tr", null, ["metric (* gated)", "step", "value", "unit", "baseline", "change", "MDE", "verdict", "valid reps"].map(function (h) { return el("th", { text: h }); }))),
        tb])));
      notes.forEach(function (x) {
        var n = x[1];
        drill.appendChild(el("div", { class: "note" }, [el("b", { text: x[0] + ": " }), n.explanation || "(no explanation stored)",
          n.noise_pct !== null && n.noise_pct !== undefined ? " · noise " + n.noise_pct.toFixed(2) + "%" : "",
          n.roofline_pct ? " · " + n.roofline_pct.toFixed(0) + "% of roofline" : "",
          n.evidence && n.evidence.length ? el("ul", null, n.evidence.map(function (e) { return el("li", { text: e }); })) : null]));
      });
      if (r && r.env && typeof r.env === "object") {
        var env = el("details", null, el("summary", { text: "environment of this run" }));
        env.appendChild(kv(Object.keys(r.env).map(function (k) { var v = r.env[k]; return [k, typeof v === "string" ? v : JSON.stringify(v)]; })));
        drill.appendChild(env);
      }
    }
    draw();
  }

  // ---- sweeps ------------------------------------------------------------------------------
  // Is p beaten by a point of `set` (at least as fast per user and per GPU, faster in one)?
  function dominated(p, set) {
    return set.some(function (q) {
      return q.per_user >= p.per_user && q.per_gpu >= p.per_gpu && (q.per_user > p.per_user || q.per_gpu > p.per_gpu);
    });
  }
  function nightName(n) {
    return "night " + n.night + (n.run_id ? " · " + n.run_id : "") + (n.revision ? " · " + n.revision : "");
  }
  // One sweep's chart: the latest night `a` (filled points, solid frontier) over the night `b`
  // it is compared with (hollow points, dashed frontier); frontier points are green.
  function sweepChart(a, b) {
    var w = 460, h = 300, L = 58, R = 14, T = 12, B = 34;
    var all = a.points.concat(b ? b.points : []);
    var x1 = Math.max.apply(null, all.map(function (p) { return p.per_user; })) * 1.1 || 1;
    var y1 = Math.max.apply(null, all.map(function (p) { return p.per_gpu; })) * 1.1 || 1;
    function X(v) { return L + v / x1 * (w - L - R); }
    function Y(v) { return T + (y1 - v) / y1 * (h - T - B); }
    var svg = sv("svg", { class: "chart pareto", viewBox: "0 0 " + w + " " + h });
    for (var i = 0; i <= 4; i++) {
      var yv = y1 * i / 4, xv = x1 * i / 4;
      svg.appendChild(sv("line", { class: "gridline", x1: L, x2: w - R, y1: Y(yv), y2: Y(yv) }));
      svg.appendChild(sv("text", { x: L - 6, y: Y(yv) + 3, "text-anchor": "end", text: fmt(yv) }));
      svg.appendChild(sv("text", { x: X(xv), y: h - B + 14, "text-anchor": "middle", text: fmt(xv) }));
    }
    svg.appendChild(sv("line", { class: "axis", x1: L, x2: L, y1: T, y2: h - B }));
    svg.appendChild(sv("line", { class: "axis", x1: L, x2: w - R, y1: h - B, y2: h - B }));
    svg.appendChild(sv("text", { x: (L + w - R) / 2, y: h - 4, "text-anchor": "middle", text: "per-user output throughput (tok/s/user)" }));
    svg.appendChild(sv("text", { x: 12, y: (T + h - B) / 2, transform: "rotate(-90 12 " + (T + h - B) / 2 + ")", "text-anchor": "middle", text: "per-GPU output throughput (tok/s/gpu)" }));
    function frontier(n, cls) {
      var f = n.points.filter(function (p) { return p.frontier; });
      if (f.length) svg.appendChild(sv("path", { class: cls, d: "M" + f.map(function (p) { return X(p.per_user).toFixed(1) + "," + Y(p.per_gpu).toFixed(1); }).join("L") }));
    }
    function points(n, cls, labelled) {
      n.points.forEach(function (p) {
        var kids = [sv("circle", { class: cls + (p.frontier ? " on" : ""), cx: X(p.per_user), cy: Y(p.per_gpu), r: 4 },
          sv("title", { text: p.label + " (" + nightName(n) + "): " + fmt(p.per_user) + " tok/s/user, " + fmt(p.per_gpu) + " tok/s/gpu" + (p.frontier ? ", on the frontier" : "") }))];
        if (labelled) kids.push(sv("text", { x: X(p.per_user) + 6, y: Y(p.per_gpu) - 5, text: p.knob || "" }));
        svg.appendChild(sv("a", { href: "case/" + p.case + ".html" }, kids));
      });
    }
    if (b) { frontier(b, "frontier prev"); points(b, "sweep-pt prev", false); }
    frontier(a, "frontier");
    points(a, "sweep-pt", true);
    return svg;
  }
  // The points of both nights side by side, by knob, and what the frontiers did to each other.
  function sweepCompare(a, b) {
    var box = el("div");
    if (!b) {
      box.appendChild(el("p", { class: "muted", text: "only one night of this sweep: nothing to compare with yet" }));
      return box;
    }
    var fa = a.points.filter(function (p) { return p.frontier; });
    var fb = b.points.filter(function (p) { return p.frontier; });
    var better = fb.filter(function (p) { return dominated(p, fa); }).length;
    var worse = fa.filter(function (p) { return dominated(p, fb); }).length;
    box.appendChild(el("p", { class: "frontier-summary" + (worse ? " neg" : better ? " pos" : ""), "data-better": better, "data-worse": worse,
      text: "Against " + nightName(b) + ": the latest frontier beats " + better + " of its " + fb.length + " frontier point(s); it beats " + worse + " of the latest " + fa.length + "." }));
    var knobs = [];
    a.points.concat(b.points).forEach(function (p) { var k = p.knob || p.label; if (knobs.indexOf(k) < 0) knobs.push(k); });
    function find(n, k) { return n.points.filter(function (p) { return (p.knob || p.label) === k; })[0]; }
    function cell(p, field) { return el("td", { class: "num" + (p && p.frontier ? " on" : "") }, p ? fmt(p[field]) + (p.frontier ? " ◆" : "") : "–"); }
    var rows = knobs.map(function (k) {
      var pa = find(a, k), pb = find(b, k);
      var d = pa && pb && pb.per_gpu ? (pa.per_gpu / pb.per_gpu - 1) * 100 : null;
      return el("tr", { "data-knob": k }, [el("td", { class: "mono", text: k }), cell(pa, "per_user"), cell(pa, "per_gpu"), cell(pb, "per_user"), cell(pb, "per_gpu"),
        el("td", { class: "num" + (d === null ? "" : d < 0 ? " neg" : d > 0 ? " pos" : ""), text: d === null ? "–" : (d > 0 ? "+" : "") + d.toFixed(1) + "%" })]);
    });
    box.appendChild(el("div", { class: "sweep-table-wrap" }, el("table", { class: "sweep-table" }, [
      el("tr", null, ["point", "per user", "per GPU", "per user, compared", "per GPU, compared", "Δ per GPU"].map(function (t) { return el("th", { text: t }); }))
    ].concat(rows))));
    return box;
  }
  function renderSweeps(app) {
    var D = window.PG_SWEEPS;
    app.textContent = "";
    app.appendChild(el("h1", { text: "Sweeps: per-user vs per-GPU output throughput" }));
    if (!D || !D.sweeps.length) {
      app.appendChild(el("p", { class: "empty", id: "empty", text: D && D.runs ? "no sweeps: no cases that differ only in concurrency or batch size with per-user and per-GPU output throughput (trtllm-bench's, or a serving client's USER_THROUGHPUT and TOTAL_OUTPUT_THROUGHPUT)" : "no runs yet" }));
      return;
    }
    app.appendChild(el("p", { class: "muted", text: "Each point is a case of the sweep (a concurrency or batch size). Filled points and the solid green line: the latest night and its Pareto frontier (no other point is faster per user and per GPU). Hollow points and the dashed line: the night it is compared with. Frontier points are green (◆ in the table)." }));
    var grid = el("div", { class: "grid", id: "sweeps" });
    D.sweeps.forEach(function (s, si) {
      var latest = s.nights[0];
      var card = el("div", { class: "chart-card", "data-sweep": si }, [el("h3", { text: s.model + " · " + s.backend + " · " + s.precision + " · " + s.prefix }),
        el("div", { class: "muted mono", text: s.key }), el("div", { class: "muted", text: "latest: " + nightName(latest) })]);
      var holder = el("div");
      function draw(k) {
        var other = k > 0 ? s.nights[k] : null;
        holder.textContent = "";
        holder.appendChild(sweepChart(latest, other));
        holder.appendChild(sweepCompare(latest, other));
      }
      if (s.nights.length > 1) {
        var select = el("select", { class: "compare" }, s.nights.slice(1).map(function (n, k) { return el("option", { value: k + 1, text: nightName(n) }); }));
        select.addEventListener("change", function () { draw(+select.value); });
        card.appendChild(el("p", { class: "drill" }, ["compare with ", select]));
      }
      card.appendChild(holder);
      draw(s.nights.length > 1 ? 1 : 0);
      grid.appendChild(card);
    });
    app.appendChild(grid);
  }

  window.PG = {
    render: function () {
      var app = document.getElementById("app");
      try {
        var page = document.body.getAttribute("data-page");
        if (page === "index") renderIndex(app);
        else if (page === "case") renderCase(app);
        else if (page === "sweeps") renderSweeps(app);
        else record("unknown page " + page);
      } catch (e) {
        record("render: " + (e && e.stack ? e.stack : e));
      }
      document.body.setAttribute("data-errors", errors.join(" | "));
      document.body.setAttribute("data-rendered", "1");
      // From navigation start to rendered: what `perfgate bench-dashboard` reports as load time.
      if (window.performance) document.body.setAttribute("data-render-ms", String(Math.round(performance.now())));
    }
  };
})();

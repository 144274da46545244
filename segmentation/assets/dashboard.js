/* The dashboard's panels, drawn with Plotly from the run's data (the JSON above this script).
 * One state, the focused segments (none, one, or two to compare), drives every panel:
 * choosing a segment's card or the selectors changes it and every panel redraws from it. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d",
    "#31a354", "#756bb1", "#636363"];
  var CONFIG = { responsive: true, displaylogo: false };
  var state = { focus: [] };
  var segments = data.segments;
  var bySegment = {};
  segments.forEach(function (e, i) { e.colour = PALETTE[i % PALETTE.length]; bySegment[e.segment] = e; });
  var panels = [];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function label(s) { var e = bySegment[s]; return e ? s + ": " + e.name : String(s); }
  function shown(s) { return state.focus.length === 0 || state.focus.indexOf(s) >= 0; }
  function visibleSegments() { return segments.map(function (e) { return e.segment; }).filter(shown); }
  function count(n) { return n == null ? "n/a" : Math.round(n).toLocaleString("en-US"); }
  function money(n) {
    return n == null ? "n/a" : n.toLocaleString("en-US", { maximumFractionDigits: Math.abs(n) >= 100 ? 0 : 2 });
  }
  function pct(n) { return n == null ? "n/a" : (100 * n).toFixed(1) + "%"; }
  function value(v) {
    if (v == null) { return ""; }
    if (typeof v === "number") { return Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(Math.abs(v) >= 100 ? 1 : 3); }
    return String(v);
  }
  function column(table, name) { return table.columns.indexOf(name); }
  function section(id, title, note) {
    var s = el("section", { id: id, "data-panel": id }, [el("h2", { text: title })]);
    if (note) { s.appendChild(el("p", { "class": "note", text: note })); }
    main.appendChild(s);
    return s;
  }
  function plot(parent, id) { var d = el("div", { "class": "plot", id: id }); parent.appendChild(d); return d; }
  function draw(div, traces, layout) {
    var base = { margin: { l: 60, r: 20, t: 30, b: 60 }, legend: { orientation: "h", y: -0.2 }, hovermode: "closest" };
    layout = Object.assign(base, layout || {});
    Object.keys(layout).forEach(function (k) {  // plotly.js 3 takes an axis title only as {text: ...}
      if (/^[xy]axis/.test(k) && typeof layout[k].title === "string") { layout[k].title = { text: layout[k].title }; }
    });
    Plotly.react(div, traces, layout, CONFIG);
  }
  function segmentTrace(s, trace) {  // a trace of one segment: its colour, legend entry and visibility
    var e = bySegment[s];
    return Object.assign({ name: label(s), legendgroup: "segment-" + s, meta: { segment: s },
      visible: shown(s) ? true : "legendonly", marker: { color: e ? e.colour : "#999" } }, trace);
  }
  function register(section, render) {  // returns the panel's own redraw, for its own controls
    var redraw = function () { render(); section.setAttribute("data-visible-segments", visibleSegments().join(",")); };
    panels.push(redraw);
    return redraw;
  }

  // Header, controls
  var run = data.run;
  var subtitle = data.kind === "score"
    ? "Scored with " + (run.model || "a saved model") + ": " + count(run.customers) + " customers in " + run.k + " segments"
    : "Run " + run.run_id + " (" + (run.started_at || "") + "): " + count(run.customers) + " customers in " + run.k + " segments";
  document.body.appendChild(el("header", {}, [el("h1", { text: "Customer segments" }),
    el("p", { text: subtitle + (run.input ? " from " + run.input : "") })]));
  var main = el("main");
  document.body.appendChild(main);
  var focusSelect = el("select", { id: "focus" }), compareSelect = el("select", { id: "compare" });
  focusSelect.appendChild(el("option", { value: "", text: "all segments" }));
  compareSelect.appendChild(el("option", { value: "", text: "no second segment" }));
  segments.forEach(function (e) {
    focusSelect.appendChild(el("option", { value: String(e.segment), text: label(e.segment) }));
    compareSelect.appendChild(el("option", { value: String(e.segment), text: label(e.segment) }));
  });
  var clear = el("button", { id: "clear", type: "button", text: "Show all" });
  main.appendChild(el("div", { "class": "controls" }, [
    el("label", {}, ["Segment ", focusSelect]), el("label", {}, ["compared with ", compareSelect]), clear,
    el("span", { "class": "hint", text: "Click a card to focus on its segment, a second card to compare two; legends toggle segments." })]));

  function setFocus(focus) {
    state.focus = focus.filter(function (s, i) { return s != null && focus.indexOf(s) === i; }).slice(0, 2);
    focusSelect.value = state.focus.length ? String(state.focus[0]) : "";
    compareSelect.value = state.focus.length > 1 ? String(state.focus[1]) : "";
    panels.forEach(function (render) { render(); });
    document.body.setAttribute("data-focus", state.focus.join(","));
  }
  function toggle(s) {
    var at = state.focus.indexOf(s);
    if (at >= 0) { setFocus(state.focus.filter(function (f) { return f !== s; })); }
    else if (state.focus.length < 2) { setFocus(state.focus.concat([s])); }
    else { setFocus([state.focus[0], s]); }
  }
  focusSelect.addEventListener("change", function () {
    var s = focusSelect.value === "" ? null : Number(focusSelect.value);
    setFocus(s == null ? [] : [s].concat(state.focus.slice(1).filter(function (f) { return f !== s; })));
  });
  compareSelect.addEventListener("change", function () {
    var s = compareSelect.value === "" ? null : Number(compareSelect.value);
    setFocus(state.focus.length ? [state.focus[0], s] : [s]);
  });
  clear.addEventListener("click", function () { setFocus([]); });

  // Overview: one card per segment
  var overview = section("overview", "Segments",
    "Customers, share and the facts that set each segment apart (its features furthest from the average, in standard deviations).");
  var cards = el("div", { "class": "cards" });
  overview.appendChild(cards);
  segments.forEach(function (e) {
    var facts = el("ul", {}, (e.facts || []).map(function (f) {
      return el("li", { text: f.text + " (" + (f.z > 0 ? "+" : "") + f.z.toFixed(1) + " sd)" });
    }));
    var parts = [el("h3", {}, [el("span", { "class": "swatch", style: "background:" + e.colour }), label(e.segment)]),
      el("div", {}, [el("span", { "class": "number customers", text: count(e.customers) }), " customers, ",
        el("span", { "class": "share", text: pct(e.share) })]), facts];
    if (e.revenue != null) { parts.push(el("div", { "class": "money revenue", text: "Revenue to date: " + money(e.revenue) })); }
    if (e.expected_revenue != null) {
      parts.push(el("div", { "class": "money expected", text: "Next " + data.predictions.horizon_days + " days: " +
        money(e.expected_revenue) + " from about " + count(e.expected_active_customers) + " active customers" }));
    }
    var card = el("div", { "class": "card", "data-segment": String(e.segment), "data-customers": String(e.customers),
      style: "border-left-color:" + e.colour, role: "button", tabindex: "0" }, parts);
    card.addEventListener("click", function () { toggle(e.segment); });
    card.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(e.segment); } });
    cards.appendChild(card);
  });
  register(overview, function () {
    Array.prototype.forEach.call(cards.children, function (card) {
      var s = Number(card.getAttribute("data-segment"));
      card.classList.toggle("focused", state.focus.indexOf(s) >= 0);
      card.classList.toggle("dimmed", !shown(s));
    });
  });

  // Sizes (and revenue where there is spend)
  var sizes = section("sizes", "Customers per segment");
  var sizesPlot = plot(sizes, "sizes-plot");
  register(sizes, function () {
    draw(sizesPlot, segments.map(function (e) {
      return segmentTrace(e.segment, { type: "bar", x: [label(e.segment)], y: [e.customers], text: [pct(e.share)],
        textposition: "auto", hovertemplate: "%{x}<br>%{y:,} customers (%{text})<extra></extra>" });
    }), { yaxis: { title: "customers" }, showlegend: false, barmode: "group" });
  });

  // Profile comparison
  var profiles = section("profiles", "Segment profiles",
    "Each segment's centre per feature: in standard deviations from the average (z), or in the feature's own units.");
  var unitSelect = el("select", { id: "profile-units" }, [el("option", { value: "z", text: "z-units" }),
    el("option", { value: "original", text: "original units" })]);
  profiles.appendChild(el("label", {}, ["Units ", unitSelect]));
  var profilesPlot = plot(profiles, "profiles-plot");
  unitSelect.addEventListener("change", register(profiles, function () {
    var z = unitSelect.value === "z";
    draw(profilesPlot, segments.map(function (e) {
      return segmentTrace(e.segment, { type: "bar", x: data.dimensions,
        y: data.dimensions.map(function (d) { return z ? e.centroid_z[d] : e.centroid[d]; }),
        hovertemplate: "%{x}: %{y:.3f}<extra>" + label(e.segment) + "</extra>" });
    }), { barmode: "group", yaxis: { title: z ? "centroid (z-units)" : "centroid (original units)" } });
  }));

  // Distributions from the bounded sample
  var samples = data.samples;
  var distributions = section("distributions", "Distributions",
    "Per segment, from a sample of up to " + data.bounds.rows_per_segment + " of its customers.");
  var featureSelect = el("select", { id: "distribution-feature" },
    data.features.map(function (f) { return el("option", { value: f, text: f }); }));
  distributions.appendChild(el("label", {}, ["Feature ", featureSelect]));
  var distributionsPlot = plot(distributions, "distributions-plot");
  featureSelect.addEventListener("change", register(distributions, function () {
    var f = column(samples, featureSelect.value), s = column(samples, "segment");
    draw(distributionsPlot, segments.map(function (e) {
      var ys = samples.rows.filter(function (r) { return r[s] === e.segment; }).map(function (r) { return r[f]; });
      return segmentTrace(e.segment, { type: "box", y: ys, boxpoints: "outliers" });
    }), { yaxis: { title: featureSelect.value }, showlegend: true });
  }));

  // The customers map and the top customers
  var map = section("customers-map", "Customers map",
    "A sample of each segment's customers on two axes (" + data.map.axes.join(", ") + "); crosses mark the segments' centres. Hover for the customer.");
  var mapPlot = plot(map, "map-plot");
  register(map, function () {
    var s = column(samples, "segment"), id = column(samples, data.id_col);
    var traces = segments.map(function (e) {
      var idx = [];
      samples.rows.forEach(function (r, i) { if (r[s] === e.segment) { idx.push(i); } });
      return segmentTrace(e.segment, { type: "scatter", mode: "markers",
        x: idx.map(function (i) { return data.map.x[i]; }), y: idx.map(function (i) { return data.map.y[i]; }),
        marker: { color: e.colour, size: 6, opacity: 0.6 },
        customdata: idx.map(function (i) {
          return [samples.rows[i][id]].concat(data.features.map(function (f) { return value(samples.rows[i][column(samples, f)]); }));
        }),
        hovertemplate: data.id_col + ": %{customdata[0]}<br>" + data.features.map(function (f, j) {
          return f + ": %{customdata[" + (j + 1) + "]}"; }).join("<br>") + "<extra>" + label(e.segment) + "</extra>" });
    });
    var centres = data.map.centroids.filter(function (c) { return shown(c.segment); });
    traces.push({ type: "scatter", mode: "markers", name: "centres", x: centres.map(function (c) { return c.x; }),
      y: centres.map(function (c) { return c.y; }), text: centres.map(function (c) { return label(c.segment); }),
      marker: { symbol: "x", size: 14, color: "#000" }, hovertemplate: "centre of %{text}<extra></extra>" });
    draw(mapPlot, traces, { xaxis: { title: data.map.axes[0] }, yaxis: { title: data.map.axes[1] } });
  });

  function tableOf(table, rows, columns) {
    var head = el("tr", {}, columns.map(function (c) { return el("th", { text: c }); }));
    var body = rows.map(function (r) {
      return el("tr", { "data-segment": String(r[column(table, "segment")]) },
        columns.map(function (c) { return el("td", { text: value(r[column(table, c)]) }); }));
    });
    return el("table", {}, [el("thead", {}, [head]), el("tbody", {}, body)]);
  }
  function csv(table, rows, columns) {
    function quote(v) { var t = v == null ? "" : String(v); return /[",\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t; }
    return [columns.map(quote).join(",")].concat(rows.map(function (r) {
      return columns.map(function (c) { return quote(r[column(table, c)]); }).join(","); })).join("\n") + "\n";
  }

  var top = data.top_customers;
  var topSection = section("top-customers", "Top customers",
    "The focused segments' (or every segment's) customers with the highest value of the chosen column, up to " + top.limit + " per segment.");
  var rankSelect = el("select", { id: "rank-column" }, top.rank_columns.map(function (c) { return el("option", { value: c, text: c }); }));
  var filter = el("input", { id: "customer-filter", type: "search", placeholder: "filter: id or name contains" });
  var download = el("button", { id: "download-csv", type: "button", text: "Download CSV" });
  topSection.appendChild(el("div", {}, [el("label", {}, ["Rank by ", rankSelect]), " ", filter, " ", download]));
  var topWrap = el("div", { "class": "table-wrap" });
  topSection.appendChild(topWrap);
  var topColumns = top.rows.columns.filter(function (c) { return c !== "segment_name"; });
  function topRows() {
    var rank = column(top.rows, rankSelect.value), s = column(top.rows, "segment");
    var needle = filter.value.trim().toLowerCase();
    var kept = top.rows.rows.filter(function (r) {
      if (!shown(r[s])) { return false; }
      return !needle || r.some(function (v) { return v != null && String(v).toLowerCase().indexOf(needle) >= 0; });
    });
    var perSegment = {};
    kept.sort(function (a, b) { return (b[rank] == null ? -Infinity : b[rank]) - (a[rank] == null ? -Infinity : a[rank]); });
    return kept.filter(function (r) { perSegment[r[s]] = (perSegment[r[s]] || 0) + 1; return perSegment[r[s]] <= top.limit; });
  }
  download.addEventListener("click", function () {
    var blob = new Blob([csv(top.rows, topRows(), topColumns)], { type: "text/csv" });
    var link = el("a", { href: URL.createObjectURL(blob), download: "top_customers_" + rankSelect.value + ".csv" });
    document.body.appendChild(link);
    link.click();
    link.remove();
  });
  var redrawTop = register(topSection, function () {
    topWrap.replaceChildren(tableOf(top.rows, topRows(), topColumns));
  });
  rankSelect.addEventListener("change", redrawTop);
  filter.addEventListener("input", redrawTop);

  // The elbow
  if (data.elbow) {
    var elbow = data.elbow;
    var elbowSection = section("elbow", "How many segments", elbow.summary);
    var elbowPlot = plot(elbowSection, "elbow-plot");
    register(elbowSection, function () {
      var chosen = elbow.k.indexOf(elbow.chosen_k);
      var confirmed = elbow.candidates.filter(function (c) { return c.elbow_confirms; }).map(function (c) { return c.k; });
      var other = elbow.candidates.filter(function (c) { return !c.elbow_confirms; }).map(function (c) { return c.k; });
      function at(ks, ys) { return ks.map(function (k) { return ys[elbow.k.indexOf(k)]; }); }
      draw(elbowPlot, [
        { type: "scatter", mode: "lines+markers", name: "WSSSE", x: elbow.k, y: elbow.wssse, hovertemplate: "K=%{x}: %{y:.4g}<extra>WSSSE</extra>" },
        { type: "scatter", mode: "lines+markers", name: "silhouette", x: elbow.k, y: elbow.silhouette, yaxis: "y2",
          line: { dash: "dot", color: "#2ca02c" }, hovertemplate: "K=%{x}: %{y:.3f}<extra>silhouette</extra>" },
        { type: "scatter", mode: "markers", name: "candidate, elbow confirms", x: confirmed, y: at(confirmed, elbow.wssse),
          marker: { symbol: "square", size: 11, color: "#ff7f0e" } },
        { type: "scatter", mode: "markers", name: "candidate, elbow does not confirm", x: other, y: at(other, elbow.wssse),
          marker: { symbol: "x", size: 11, color: "#ff7f0e" } },
        { type: "scatter", mode: "markers", name: "chosen K = " + elbow.chosen_k, x: [elbow.chosen_k], y: [elbow.wssse[chosen]],
          marker: { size: 18, color: "rgba(0,0,0,0)", line: { color: "red", width: 3 } } },
      ], { xaxis: { title: "K", dtick: 1 }, yaxis: { title: "WSSSE (z-units²)" },
        yaxis2: { title: "silhouette", overlaying: "y", side: "right" } });
    });
  }

  // Since the previous run
  if (data.migrations) {
    var m = data.migrations;
    var migrationSection = section("migrations", "Where the previous run's customers went",
      (m.summary && m.summary.stability != null ? pct(m.summary.stability) + " of returning customers kept their segment. " : "") +
      "Rows: the previous run's segments and new customers; columns: this run's segments and customers who are gone.");
    var migrationPlot = plot(migrationSection, "migrations-plot");
    register(migrationSection, function () {
      var rows = m.rows.filter(function (r) { return r.from_segment == null || shown(r.from_segment) || (r.to_segment != null && shown(r.to_segment)); });
      function order(key, numberKey) {
        var seen = {};
        rows.forEach(function (r) { seen[r[key]] = r[numberKey] == null ? Infinity : r[numberKey]; });
        return Object.keys(seen).sort(function (a, b) { return seen[a] - seen[b]; });
      }
      var ys = order("from", "from_segment"), xs = order("to", "to_segment");
      var z = ys.map(function () { return xs.map(function () { return 0; }); });
      var text = ys.map(function () { return xs.map(function () { return ""; }); });
      rows.forEach(function (r) {
        var i = ys.indexOf(r.from), j = xs.indexOf(r.to);
        z[i][j] += r.share; text[i][j] = count(r.customers);
      });
      draw(migrationPlot, [{ type: "heatmap", x: xs, y: ys, z: z, text: text, texttemplate: "%{z:.0%}<br>%{text}",
        colorscale: "Blues", zmin: 0, zmax: 1, hovertemplate: "%{y} → %{x}: %{z:.1%} (%{text})<extra></extra>" }],
        { xaxis: { title: "this run" }, yaxis: { title: "previous run", autorange: "reversed" }, margin: { l: 170, r: 20, t: 20, b: 90 } });
    });
  }
  if (data.drift) {
    var drift = data.drift;
    var driftSection = section("drift", "Drift", drift.drifted ? "Drifted: " + drift.reasons.join("; ") : "No drift beyond the limits.");
    var driftTable = { columns: ["segment", "name", "status", "share before", "share now", "centroid shift (z)"] };
    driftTable.rows = drift.segments.map(function (s) {
      return [s.segment, s.segment_name, s.status, s.previous_share == null ? null : pct(s.previous_share), pct(s.share),
        s.centroid_shift_z == null ? null : s.centroid_shift_z];
    });
    var driftWrap = el("div", { "class": "table-wrap" });
    driftSection.appendChild(driftWrap);
    register(driftSection, function () {
      driftWrap.replaceChildren(tableOf(driftTable, driftTable.rows.filter(function (r) { return shown(r[0]); }), driftTable.columns));
    });
  }

  // Predictions
  if (data.predictions) {
    var p = data.predictions;
    var predictionSection = section("predictions", "The next " + p.horizon_days + " days",
      "Predicted by " + p.model + " (" + p.decided_by + "). Expected revenue and active customers per segment; the backtest's gain chart on the held-out days.");
    var row = el("div", { "class": "row" });
    predictionSection.appendChild(row);
    var revenuePlot = plot(row, "expected-revenue-plot"), gainPlot = plot(row, "gain-plot");
    var riskNote = el("p", { "class": "note" });
    predictionSection.appendChild(riskNote);
    var riskWrap = el("div", { "class": "table-wrap" });
    predictionSection.appendChild(riskWrap);
    var riskColumns = p.at_risk.columns.filter(function (c) { return c !== "segment_name"; });
    register(predictionSection, function () {
      draw(revenuePlot, segments.map(function (e) {
        return segmentTrace(e.segment, { type: "bar", x: [label(e.segment)], y: [e.expected_revenue],
          customdata: [[count(e.expected_active_customers), count(p.at_risk_counts[String(e.segment)])]],
          hovertemplate: "%{x}<br>expected revenue %{y:,.0f}<br>about %{customdata[0]} active customers<br>" +
            "%{customdata[1]} customers at " + p.at_risk_band + " churn risk<extra></extra>" });
      }), { yaxis: { title: "expected revenue, next " + p.horizon_days + " days" }, showlegend: false });
      var gains = p.backtest.filter(function (b) { return b.gain; }).map(function (b) {
        var n = b.gain.length;
        return { type: "scatter", mode: "lines+markers", name: b.model + (b.chosen ? " (chosen)" : ""),
          x: [0].concat(b.gain.map(function (_, i) { return 100 * (i + 1) / n; })), y: [0].concat(b.gain),
          line: { width: b.chosen ? 3 : 1.5 }, hovertemplate: "top %{x:.0f}%: %{y:.1%} of spend<extra>" + b.model + "</extra>" };
      });
      gains.push({ type: "scatter", mode: "lines", name: "random", x: [0, 100], y: [0, 1], line: { dash: "dot", color: "#999" } });
      draw(gainPlot, gains, { xaxis: { title: "top % of customers by expected spend" }, yaxis: { title: "share of held-out spend", tickformat: ".0%" } });
      var s = column(p.at_risk, "segment"), v = column(p.at_risk, p.value_column);
      var risky = p.at_risk.rows.filter(function (r) { return shown(r[s]); }).sort(function (a, b) { return b[v] - a[v]; });
      riskNote.textContent = "Valuable customers at " + p.at_risk_band + " churn risk: the top " + risky.length +
        " by " + p.value_column + (state.focus.length ? " in the focused segments" : "") + ".";
      riskWrap.replaceChildren(tableOf(p.at_risk, risky, riskColumns));
    });
  }

  setFocus([]);
  window.dashboard = { state: state, setFocus: setFocus, data: data };
  document.body.setAttribute("data-ready", "true");
})();

// Sentinel console: live updates by short polling. Every few seconds the page fetches itself
// (same URL, same session), and swaps each [data-live] region for the fresh one: the server
// renders the numbers, this file only moves them in and draws the charts (uPlot, vendored).
(function () {
  "use strict";
  var REFRESH_MS = 5000;
  var COLORS = ["#2557d6", "#9aa4b2", "#c0262d", "#1a7f37", "#b88700", "#7c3aed", "#c25e00", "#0e7490"];

  function fmt(scale) {
    return function (u, values) {
      return values.map(function (v) { return v == null ? "" : (v / Math.pow(10, scale || 0)).toLocaleString(); });
    };
  }

  function draw(holder) {
    if (typeof uPlot === "undefined") return;
    var spec = JSON.parse(holder.querySelector("script").textContent);
    var old = holder.querySelector(".uplot");
    if (old) old.remove();
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    var bars = spec.kind === "bars" ? uPlot.paths.bars({ size: [0.7, 60] }) : null;
    var series = [{ label: spec.xlabel || (spec.xtime ? "time" : "x") }].concat(spec.series.map(function (s, i) {
      var color = COLORS[i % COLORS.length];
      return { label: s.label, stroke: color, width: 2, dash: s.dash ? [6, 4] : undefined,
               fill: bars ? color + "99" : undefined, paths: bars || undefined, spanGaps: false };
    }));
    var opts = {
      width: Math.max(280, holder.clientWidth), height: 220, series: series,
      scales: { x: { time: !!spec.xtime } },
      axes: [{}, { size: 64, values: fmt(spec.scale) }],
    };
    if (!spec.xtime && spec.kind === "bars") opts.scales.x.distr = 2;
    new uPlot(opts, data, holder);
  }

  function drawAll(root) {
    root.querySelectorAll("[data-chart]").forEach(draw);
  }

  function stamp(ok) {
    document.querySelectorAll("[data-stamp]").forEach(function (el) {
      el.textContent = ok ? "updated " + new Date().toLocaleTimeString() : "update failed";
      el.classList.toggle("stale", !ok);
    });
  }

  function busy() {
    var active = document.activeElement;
    return document.hidden || (active && active.closest && active.closest("form"));
  }

  function refresh() {
    if (busy()) return;
    fetch(location.href, { headers: { accept: "text/html" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.redirected && r.url.indexOf("/login") >= 0) { location.href = r.url; return null; }
        if (!r.ok) throw new Error(r.status);
        return r.text();
      })
      .then(function (html) {
        if (html == null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.querySelector('[data-live="' + el.dataset.live + '"]');
          if (fresh) { el.replaceWith(fresh); drawAll(fresh); }
        });
        stamp(true);
      })
      .catch(function () { stamp(false); });
  }

  drawAll(document);
  stamp(true);
  setInterval(refresh, REFRESH_MS);
  window.addEventListener("resize", function () { drawAll(document); });
})();

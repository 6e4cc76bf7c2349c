/* edge's charts: uPlot line charts, with the run's events as labelled vertical lines.
 *
 * EdgeCharts.draw(node, page) draws page.sections = [{title, charts: [{title, unit, series:
 * [{label, values}]}]}] over the shared x values page.x (seconds: simulated ones, or epoch seconds
 * when page.time), marking page.events = [{at, label}]. Drawn again with the same charts, it
 * updates their data in place (the live dashboard polls); with other charts, it starts over.
 * A quantile's series also has samples (each point's) and needs (the fewest it is drawn from):
 * the legend gives a point's samples with its value, and says why a point is missing.
 */
window.EdgeCharts = (function () {
  "use strict";
  var palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var charts = [];
  var shape = "";

  function number(v) {
    if (v === null || v === undefined) { return "—"; }
    var a = Math.abs(v);
    if (a >= 1e6) { return (v / 1e6).toFixed(1) + "M"; }
    if (a >= 1e4) { return (v / 1e3).toFixed(1) + "k"; }
    if (a >= 100 || v === 0) { return v.toFixed(0); }
    if (a >= 1) { return v.toFixed(2); }
    return v.toPrecision(2);
  }
  function count(v) {  // a number of samples: whole below 10k (number() gives 95 as "95.00")
    return Math.abs(v) >= 1e4 ? number(v) : v.toFixed(0);
  }
  var suffix = {"/s": "/s", ms: " ms", "%": "%", cores: "", "": ""};
  function formatter(unit) {
    return function (v) { return v === null || v === undefined ? "—" : number(v) + (suffix[unit] || ""); };
  }

  // The events are the page's latest (u.edgeEvents): a live dashboard's rollout takes steps as it goes.
  function events() {
    return {hooks: {draw: [function (u) {
      var ctx = u.ctx, ratio = window.devicePixelRatio || 1;
      ctx.save();
      u.edgeMarked = [];
      (u.edgeEvents || []).forEach(function (e) {
        var x = Math.round(u.valToPos(e.at, "x", true));
        if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) { return; }
        u.edgeMarked.push(e.label);
        ctx.strokeStyle = "#999";
        ctx.setLineDash([4 * ratio, 4 * ratio]);
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = "#555";
        ctx.font = 10 * ratio + "px sans-serif";
        ctx.save();
        ctx.translate(x + 3 * ratio, u.bbox.top + 4 * ratio);
        ctx.rotate(Math.PI / 2);
        ctx.fillText(e.label, 0, 0);
        ctx.restore();
      });
      ctx.restore();
    }]}};
  }

  function chart(grid, spec, page) {
    var node = document.createElement("div");
    node.className = "edge-chart";
    grid.appendChild(node);
    var format = formatter(spec.unit);
    var opts = {
      title: spec.title,
      width: Math.max(400, node.clientWidth - 8),
      height: 220,
      scales: {x: {time: !!page.time}, y: {range: function (u, min, max) { return [Math.min(0, min), max > 0 ? max * 1.05 : 1]; }}},
      series: [{label: page.time ? "time" : "simulated s"}].concat(spec.series.map(function (s, i) {
        return {label: s.label, stroke: palette[i % palette.length], width: 1.5, dash: s.dash, value: function (u, v, si, at) {
          var now = (u.edgeSpec || spec).series[si - 1], n = now.samples && at !== null && at !== undefined ? now.samples[at] : null;
          if (n === null || n === undefined) { return format(v); }
          return v === null && n > 0 ? "— (n " + count(n) + ", needs " + now.needs + ")" : format(v) + " (n " + count(n) + ")";
        }};
      })),
      axes: [{}, {size: 70, values: function (u, values) { return values.map(format); }}],
      plugins: [events()],
    };
    var u = new uPlot(opts, data(spec, page), node);
    u.edgeSpec = spec;
    u.edgeEvents = page.events || [];
    u.redraw();
    return u;
  }

  function data(spec, page) {
    return [page.x].concat(spec.series.map(function (s) { return s.values; }));
  }

  function draw(node, page) {
    var now = JSON.stringify(page.sections.map(function (s) {
      return [s.title, s.charts.map(function (c) { return [c.title, c.series.map(function (x) { return x.label; })]; })];
    }));
    if (now === shape) {
      var i = 0;
      page.sections.forEach(function (s) {
        s.charts.forEach(function (c) {
          charts[i].edgeSpec = c;
          charts[i].edgeEvents = page.events || [];
          charts[i++].setData(data(c, page));
        });
      });
      return;
    }
    charts.forEach(function (u) { u.destroy(); });
    charts = [];
    node.textContent = "";
    shape = now;
    page.sections.forEach(function (section) {
      var title = document.createElement("h2");
      title.textContent = section.title;
      node.appendChild(title);
      var grid = document.createElement("div");
      grid.className = "edge-grid";
      node.appendChild(grid);
      section.charts.forEach(function (spec) { charts.push(chart(grid, spec, page)); });
    });
  }

  function points() {
    return charts.map(function (u) {
      return u.data.slice(1).reduce(function (n, ys) { return n + ys.filter(function (y) { return y !== null; }).length; }, 0);
    });
  }

  window.addEventListener("resize", function () {
    charts.forEach(function (u) { u.setSize({width: Math.max(400, u.root.parentNode.clientWidth - 8), height: 220}); });
  });
  // The events each chart marked in its last drawing (for the tests: a canvas keeps no labels).
  function marked() {
    return charts.map(function (u) { return u.edgeMarked || []; });
  }

  return {draw: draw, points: points, marked: marked};
})();

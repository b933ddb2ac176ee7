/* Draws every <canvas data-chart="ID"> from the JSON in the element with that id (Django's json_script):
   a Chart.js configuration {type, data, options}, plus "valueFormat": "hkd" or "percent" for the value
   axis and tooltips. Runs on page load and on every piece of page htmx swaps in, and destroys the charts
   htmx swaps out (docs/web.md). */
(function () {
  "use strict";

  var formats = {
    hkd: new Intl.NumberFormat("en-HK", { style: "currency", currency: "HKD", currencyDisplay: "symbol" }),
    percent: new Intl.NumberFormat("en-HK", { style: "percent", minimumFractionDigits: 2, maximumFractionDigits: 2 }),
  };

  function formatter(name) {
    var format = formats[name];
    if (!format) {
      return null;
    }
    return function (value) {
      return format.format(Number(value));
    };
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source) {
      throw new Error("No chart data with id " + canvas.dataset.chart);
    }
    var config = JSON.parse(source.textContent);
    var format = formatter(config.valueFormat);
    delete config.valueFormat;
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
    if (format) {
      var horizontal = config.options.indexAxis === "y";
      var scales = (config.options.scales = config.options.scales || {});
      var axis = (scales[horizontal ? "x" : "y"] = scales[horizontal ? "x" : "y"] || {});
      axis.ticks = Object.assign({ callback: format }, axis.ticks);
      var plugins = (config.options.plugins = config.options.plugins || {});
      plugins.tooltip = plugins.tooltip || {};
      plugins.tooltip.callbacks = Object.assign(
        {
          label: function (item) {
            return (item.dataset.label ? item.dataset.label + ": " : "") + format(horizontal ? item.parsed.x : item.parsed.y);
          },
        },
        plugins.tooltip.callbacks
      );
    }
    var existing = window.Chart.getChart(canvas);
    if (existing) {
      existing.destroy();
    }
    new window.Chart(canvas, config);
    canvas.dataset.chartDrawn = "true";
  }

  function drawAll(root) {
    var canvases = root.querySelectorAll ? root.querySelectorAll("canvas[data-chart]") : [];
    if (root.matches && root.matches("canvas[data-chart]")) {
      draw(root);
    }
    Array.prototype.forEach.call(canvases, draw);
  }

  if (window.htmx) {
    window.htmx.onLoad(drawAll); // the whole page first, then each swapped-in piece
    // A chart swapped out is destroyed, or a polled chart would leave one Chart object behind per poll.
    document.addEventListener("htmx:beforeCleanupElement", function (event) {
      var element = event.target; // also text nodes: htmx cleans up every node it swaps out
      var chart = element instanceof HTMLCanvasElement && element.dataset.chart && window.Chart.getChart(element);
      if (chart) {
        chart.destroy();
      }
    });
  } else {
    document.addEventListener("DOMContentLoaded", function () {
      drawAll(document);
    });
  }
})();

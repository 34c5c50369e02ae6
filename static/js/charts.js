// Draws every <div data-plotly-figure="ID"> from the JSON of <script type="application/json" id="ID">
// (written by Django's json_script), on page load and in content htmx swaps in.
"use strict";

function drawCharts(root) {
  if (!window.Plotly) return;
  root.querySelectorAll("[data-plotly-figure]").forEach(function (element) {
    var source = document.getElementById(element.getAttribute("data-plotly-figure"));
    if (!source) return;
    var figure = JSON.parse(source.textContent);
    window.Plotly.newPlot(element, figure.data, figure.layout, { responsive: true, displaylogo: false });
  });
}

if (window.htmx) {
  window.htmx.onLoad(drawCharts);
} else {
  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
}

// Telegaz: small progressive enhancements of our own; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Buttons that print the page (the configuration sheet).
  document.querySelectorAll("[data-print]").forEach(function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
  // Forms that ask before doing something that cannot be undone.
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
  // Chart points show their value on hover (the SVG carries <title> already).
  document.querySelectorAll("svg.chart").forEach(function (svg) {
    svg.setAttribute("data-ready", "1");
  });
});

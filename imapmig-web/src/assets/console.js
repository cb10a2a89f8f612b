// imapmig console: the live parts, in plain JavaScript (no framework, nothing fetched from
// elsewhere). Elements with data-poll="URL" are replaced every few seconds by the fragment the
// URL returns; the page keeps working without this script, only without live updates.
(function () {
  "use strict";
  // Ticked checkboxes (the accounts table's rows) stay ticked when their rows are replaced.
  function replace(el, html) {
    var ticked = {};
    el.querySelectorAll("input[type=checkbox]:checked").forEach(function (c) {
      ticked[c.name + "=" + c.value] = true;
    });
    el.innerHTML = html;
    el.querySelectorAll("input[type=checkbox]").forEach(function (c) {
      if (ticked[c.name + "=" + c.value]) { c.checked = true; }
    });
  }
  function poll(el) {
    var url = el.getAttribute("data-poll");
    var every = parseInt(el.getAttribute("data-every") || "3000", 10);
    function tick() {
      if (document.hidden) { return setTimeout(tick, every); }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { replace(el, html); } })
        .catch(function () {})
        .then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
    // The accounts table's "select all on this page".
    var all = document.getElementById("select-all");
    if (all) {
      all.addEventListener("change", function () {
        document.querySelectorAll("#accounts tbody input[name=ids]").forEach(function (c) {
          c.checked = all.checked;
        });
      });
    }
  });
})();

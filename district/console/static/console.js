// Live parts of the console: elements with data-refresh are re-fetched every few seconds (server-rendered
// HTML fragments, no framework). A 401 means the session ended: reload, which leads to the login page.
(function () {
  "use strict";
  function refresh(el) {
    var url = el.getAttribute("data-refresh");
    var every = parseInt(el.getAttribute("data-every") || "3000", 10);
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) {
            el.innerHTML = html;
            el.setAttribute("data-updated", String(Date.now()));
          }
        })
        .catch(function () { el.classList.add("stale"); })
        .then(function () { window.setTimeout(tick, every); });
    }
    window.setTimeout(tick, every);
  }
  function scopeCount(select) {
    var out = document.getElementById("scope-count");
    if (!out) { return; }
    function show() {
      var opt = select.options[select.selectedIndex];
      if (!opt || !opt.value) { out.textContent = out.getAttribute("data-none"); return; }
      out.textContent = out.getAttribute("data-template")
        .replace("{n}", opt.getAttribute("data-count"))
        .replace("{online}", opt.getAttribute("data-online"))
        .replace("{scope}", opt.value);
    }
    select.addEventListener("change", show);
    show();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(refresh);
    var sel = document.getElementById("scope");
    if (sel) { scopeCount(sel); }
  });
})();

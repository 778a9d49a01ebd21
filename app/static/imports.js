// The progress bar of a CSV import. A static file because the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";
  var box = document.getElementById("running");
  if (!box) {
    return;
  }
  var bar = document.getElementById("import-progress");
  var percent = document.getElementById("import-percent");
  var state = document.getElementById("import-state");
  function poll() {
    fetch(box.getAttribute("data-progress-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (p) {
        if (!p) {
          return window.setTimeout(poll, 3000);
        }
        if (p.finished) {
          window.location.reload();
          return null;
        }
        bar.value = p.percent;
        bar.textContent = p.percent + "%";
        percent.textContent = p.percent + "%";
        state.textContent = p.status === "queued" ? "Waiting for a worker…"
          : (p.status === "saving" ? "Saving " : "Read ") + p.rows.toLocaleString("en") + " rows…";
        return window.setTimeout(poll, 700);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 500);
})();

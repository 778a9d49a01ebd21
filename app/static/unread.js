// Keeps the unread counts on the top bar's mailbox buttons fresh.
// The page renders the cached counts, and so does /bridge/unread, which this polls at the
// interval set in the mail configuration: neither ever waits on a mail server, since the
// worker's schedule refreshes the counts (IMAP STATUS). A static file because the CSP forbids
// inline scripts.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script && script.getAttribute("data-unread-url");
  if (!url) { return; }
  var delay = parseInt(script.getAttribute("data-refresh-seconds") || "300", 10) * 1000;

  function setBadge(holder, count) {
    var badge = holder.querySelector(".badge");
    if (count === null || count === undefined || count === 0) {
      if (badge) { badge.remove(); }
      return;
    }
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "badge";
      holder.appendChild(document.createTextNode(" "));
      holder.appendChild(badge);
    }
    badge.textContent = String(count);
  }

  function apply(data) {
    if (!data || !data.show) { return; }
    var total = 0;
    data.mailboxes.forEach(function (mb) {
      total += mb.unread || 0;
      document.querySelectorAll('[data-mailbox="' + mb.id + '"]').forEach(function (button) {
        setBadge(button, mb.unread);
      });
      document.querySelectorAll('[data-mailbox-unread="' + mb.id + '"]').forEach(function (cell) {
        cell.textContent = mb.unread === null ? "—" : String(mb.unread);
      });
    });
    var summary = document.querySelector(".mailbox-menu > summary");
    if (summary) { setBadge(summary, total); }
    if (data.refresh_seconds) { delay = data.refresh_seconds * 1000; }
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(apply)
      .catch(function () { /* the next poll tries again */ })
      .then(function () { window.setTimeout(poll, delay); });
  }

  poll();
})();

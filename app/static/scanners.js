// Mail scanner pages: live scan progress, and the folder rows of the scanner form.
// A static file because the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";

  // ------------------------------------------------------------------ live progress on the list
  var POLL_MS = 1500;

  function watchProgress(box) {
    var url = box.getAttribute("data-progress-url");
    var bar = box.querySelector(".progress > span");
    var text = box.querySelector(".progress-text");
    var wasActive = false;
    // Right after "Scan now" (the page is opened at #scanner-<id>) the job may still be starting
    // on a worker and read as idle: keep looking for a while before giving up.
    var row = box.closest("tr");
    var graceUntil = row && window.location.hash === "#" + row.id ? Date.now() + 20000 : 0;

    function reloadWithoutHash() {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
      window.location.reload();
    }

    function show(data) {
      var state = data.state;
      if (state === "queued" || state === "running") {
        wasActive = true;
        box.hidden = false;
        var done = Number(data.downloaded || 0);
        var total = Number(data.total || 0);
        if (state === "queued") {
          bar.style.width = "3%";
          text.textContent = "Queued";
        } else if (total > 0) {
          bar.style.width = Math.min(100, Math.round((100 * done) / total)) + "%";
          text.textContent = done + " of " + total + " messages";
        } else {
          bar.style.width = "10%";
          text.textContent = done + " messages";
        }
        return true;
      }
      box.hidden = true;
      if (wasActive) {
        // The scan ended: reload once so the row shows the new last run.
        reloadWithoutHash();
        return false;
      }
      if (graceUntil) {
        if (Date.now() < graceUntil) {
          return true;
        }
        // Never seen running: it may have been quicker than the polling; show the outcome.
        reloadWithoutHash();
      }
      return false;
    }

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : { state: "unknown" }; })
        .then(function (data) {
          if (show(data)) {
            window.setTimeout(poll, POLL_MS);
          }
        })
        .catch(function () { box.hidden = true; });
    }

    poll();
  }

  document.querySelectorAll(".scan-progress[data-progress-url]").forEach(watchProgress);

  // ------------------------------------------------------------------ folder rows of the form
  var form = document.getElementById("scanner-form");
  if (!form) {
    return;
  }
  var rows = document.getElementById("folder-rows");
  var status = document.getElementById("folder-status");
  var CHOICES = [["", "Don't scan"], ["incoming", "Incoming"], ["outgoing", "Outgoing"]];
  var SENT = /^(inbox[./])?(sent|sent items|sent messages|sent mail|\[gmail\]\/sent mail)$/i;

  function makeRow(index, name, direction, fromServer) {
    var tr = document.createElement("tr");
    var nameCell = document.createElement("td");
    var input = document.createElement("input");
    input.type = "text";
    input.className = "folder-name";
    input.name = "folders-" + index + "-name";
    input.id = input.name;
    input.maxLength = 255;
    input.value = name;
    if (fromServer === true) {
      input.readOnly = true;
    } else if (fromServer === false && name) {
      input.title = "This folder was not found on the server.";
      tr.className = "muted";
    }
    nameCell.appendChild(input);
    var dirCell = document.createElement("td");
    var select = document.createElement("select");
    select.className = "folder-direction";
    select.name = "folders-" + index + "-direction";
    select.id = select.name;
    CHOICES.forEach(function (choice) {
      var option = document.createElement("option");
      option.value = choice[0];
      option.textContent = choice[1];
      option.selected = choice[0] === direction;
      select.appendChild(option);
    });
    dirCell.appendChild(select);
    tr.appendChild(nameCell);
    tr.appendChild(dirCell);
    return tr;
  }

  function currentChoices() {
    var chosen = [];
    rows.querySelectorAll("tr").forEach(function (tr) {
      var name = tr.querySelector(".folder-name").value.trim();
      var direction = tr.querySelector(".folder-direction").value;
      if (name) {
        chosen.push([name, direction]);
      }
    });
    return chosen;
  }

  document.getElementById("add-folder").addEventListener("click", function () {
    var row = makeRow(rows.querySelectorAll("tr").length, "", "incoming", null);
    rows.appendChild(row);
    row.querySelector("input").focus();
  });

  document.getElementById("load-folders").addEventListener("click", function () {
    var button = this;
    var data = new FormData();
    data.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
    data.append("server_id", form.querySelector("[name=server_id]").value);
    data.append("login", form.querySelector("[name=login]").value);
    data.append("password", form.querySelector("[name=password]").value);
    data.append("account_id", form.getAttribute("data-account-id") || "");
    button.disabled = true;
    status.className = "muted";
    status.textContent = "Logging in to read the folders…";
    fetch(form.getAttribute("data-folders-url"), { method: "POST", body: data, credentials: "same-origin" })
      .then(function (response) {
        return response.json().catch(function () {
          return { error: "The server answered with an error page (HTTP " + response.status + ")." };
        });
      })
      .then(function (answer) {
        if (answer.error) {
          status.className = "error-text";
          status.textContent = answer.error;
          return;
        }
        var chosen = {};
        currentChoices().forEach(function (pair) { chosen[pair[0]] = pair[1]; });
        var onServer = {};
        answer.folders.forEach(function (name) { onServer[name] = true; });
        // The default "Sent" may be called otherwise on this server: carry its choice over.
        if (chosen.Sent && !onServer.Sent) {
          var renamed = answer.folders.filter(function (name) { return SENT.test(name) && !chosen[name]; });
          if (renamed.length) {
            chosen[renamed[0]] = chosen.Sent;
            delete chosen.Sent;
          }
        }
        // The move target is picked from the same list.
        var targets = document.getElementById("server-folders");
        if (targets) {
          targets.innerHTML = "";
          answer.folders.forEach(function (name) {
            var option = document.createElement("option");
            option.value = name;
            targets.appendChild(option);
          });
        }
        rows.innerHTML = "";
        var index = 0;
        answer.folders.forEach(function (name) {
          rows.appendChild(makeRow(index++, name, chosen[name] || "", true));
        });
        Object.keys(chosen).forEach(function (name) {
          if (!onServer[name]) {
            rows.appendChild(makeRow(index++, name, chosen[name], false));
          }
        });
        status.className = "status-ok";
        var count = answer.folders.length;
        status.textContent = count + (count === 1 ? " folder" : " folders") + " on the server. Choose which to scan.";
      })
      .catch(function () {
        status.className = "error-text";
        status.textContent = "The folders could not be loaded: the page did not get an answer. Try again.";
      })
      .finally(function () { button.disabled = false; });
  });
})();

// Scanner form: an OAuth 2.0 server needs no password; say so instead of asking for one.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("scanner-form");
    var server = form && form.querySelector("[name='server_id']");
    var password = document.getElementById("password-field");
    var note = document.getElementById("oauth-note");
    if (!server || !password || !note) {
      return;
    }
    var oauth = (form.getAttribute("data-oauth-servers") || "").split(",").filter(Boolean);
    function update() {
      var isOauth = oauth.indexOf(server.value) !== -1;
      password.hidden = isOauth;
      note.hidden = !isOauth;
    }
    server.addEventListener("change", update);
    update();
  });
})();

// Mail server form: picking an OAuth 2.0 provider fills its presets at once, and the OAuth
// settings show only when Authentication is OAuth 2.0.
// A static file because the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";
  var URL_FIELDS = { authorize_url: "oauth_authorize_url", token_url: "oauth_token_url", scopes: "oauth_scopes" };

  function byName(form, name) {
    return form.querySelector("[name='" + name + "']");
  }

  // A value left from another provider's preset counts as not typed by the administrator.
  function isPreset(presets, key, value) {
    return Object.keys(presets).some(function (name) {
      return presets[name][key] && presets[name][key] === value;
    });
  }

  function fillPresets(form, presets, provider) {
    var chosen = presets[provider] || {};
    Object.keys(URL_FIELDS).forEach(function (key) {
      var input = byName(form, URL_FIELDS[key]);
      if (input && (!input.value.trim() || isPreset(presets, key, input.value.trim()))) {
        input.value = chosen[key] || "";
      }
    });
    var hosts = chosen.hosts || {};
    var imapHost = byName(form, "imap_host");
    if (hosts.imap_host && imapHost && !imapHost.value.trim()) {
      Object.keys(hosts).forEach(function (name) {
        var input = byName(form, name);
        if (input) {
          input.value = hosts[name];
        }
      });
    }
  }

  function showOauth(form) {
    var method = byName(form, "auth_method");
    var box = document.getElementById("oauth-fields");
    if (method && box) {
      box.hidden = method.value !== "oauth2";
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("server-form");
    if (!form) {
      return;
    }
    var presets = JSON.parse(form.getAttribute("data-presets") || "{}");
    var provider = byName(form, "oauth_provider");
    var method = byName(form, "auth_method");
    if (provider) {
      provider.addEventListener("change", function () {
        if (provider.value && method && method.value !== "oauth2") {
          method.value = "oauth2";
          showOauth(form);
        }
        fillPresets(form, presets, provider.value);
      });
    }
    if (method) {
      method.addEventListener("change", function () { showOauth(form); });
    }
    showOauth(form);
  });
})();

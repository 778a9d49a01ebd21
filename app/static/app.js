// Behaviour shared by every page. A static file because the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";
  // Forms that need a confirmation carry their question in data-confirm.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute && form.hasAttribute("data-confirm") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  }, true);
  // The mailbox hand-off page posts its one-time link to webmail at once (the button is there without script).
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-autosubmit]");
    if (form) {
      form.submit();
    }
  });
})();

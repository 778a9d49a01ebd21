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
})();

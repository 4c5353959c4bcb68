// herd console: the live parts of a page. An element with data-poll="/console/..." is
// replaced every second by the fragment that URL answers ({"html", "done"}), until "done".
// No framework, no build step. The fragment is rendered (and escaped) by the server.
"use strict";
window.herdConsoleLoaded = Date.now(); // set once per page load: tests check no reload happened

(function () {
  var PERIOD_MS = 1000;

  function follow(element) {
    var url = element.getAttribute("data-poll");
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (answer) {
          if (!answer.ok) { throw new Error("HTTP " + answer.status); }
          return answer.json();
        })
        .then(function (body) {
          var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 8;
          element.innerHTML = body.html;
          element.setAttribute("data-updated", String(Date.now()));
          if (element.hasAttribute("data-follow") && atBottom) { window.scrollTo(0, document.body.scrollHeight); }
          if (body.done) { element.setAttribute("data-done", "1"); return; }
          window.setTimeout(tick, PERIOD_MS);
        })
        .catch(function () { window.setTimeout(tick, PERIOD_MS * 3); }); // server restarting: keep trying, slower
    }
    window.setTimeout(tick, PERIOD_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.querySelectorAll("[data-poll]");
    for (var i = 0; i < live.length; i++) { follow(live[i]); }
  });
})();

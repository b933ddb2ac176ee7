/* The portal's own behaviour (no inline scripts under the content security policy):
   - counts down every [data-deadline] element (an ISO time) to hours:minutes:seconds, once a second;
   - shows a what-if slider's value beside it as it moves (the figures come from the server). */
(function () {
  "use strict";

  function pad(number) {
    return number < 10 ? "0" + number : String(number);
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (element) {
      var left = Math.max(0, Math.floor((Date.parse(element.dataset.deadline) - now) / 1000));
      var hours = Math.floor(left / 3600);
      var minutes = Math.floor((left % 3600) / 60);
      element.textContent = pad(hours) + ":" + pad(minutes) + ":" + pad(left % 60);
    });
  }

  function showSliderValue(event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[type=range][data-output]")) {
      return;
    }
    var output = document.getElementById(input.dataset.output);
    if (output) {
      var value = Number(input.value);
      output.textContent = (value > 0 ? "+" : value < 0 ? "\u2212" : "") + Math.abs(value) + "%";
    }
  }

  document.addEventListener("input", showSliderValue);
  document.addEventListener("DOMContentLoaded", tick);
  setInterval(tick, 1000);
})();

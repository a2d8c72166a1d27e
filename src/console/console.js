// The console's only script: a running bulk disconnect reloads its page until it
// is finished, and "select all" ticks every row's box.
(function () {
  var running = document.querySelector("[data-running]");
  if (running) {
    setTimeout(function () { location.reload(); }, 1000);
  }
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name='" + all.dataset.selectAll + "']").forEach(function (b) {
        b.checked = all.checked;
      });
    });
  });
})();

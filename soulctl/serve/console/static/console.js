// The Now page, live: the server's state as server-sent events (GET /events), the same state
// the page was rendered from. Without this script the page is still right when loaded.
(function () {
  "use strict";
  if (!window.EventSource || !document.getElementById("now")) return;
  var shown = function (state) {
    var log = state.log || {};
    var last = state.last_cycle, schedule = state.schedule || {};
    return {
      doing: state.doing,
      served: state.served || "—",
      current: state.current || "—",
      answering: state.answering,
      generations: state.generations + " (anchor " + (state.anchor || "—") + ")",
      queued: String((state.server || {}).queued || 0),
      packets: (log.packets !== undefined ? log.packets : log.error) + " packets",
      cycle: state.night_text,
      last_cycle: last ? last.status + ": " + last.reason + " (" + last.ts + ")" : "none yet",
      schedule: schedule.installed ? schedule.name + ", next " + schedule.next_run : "none (soulctl schedule install)"
    };
  };
  var feed = new EventSource("/events");
  feed.onmessage = function (event) {
    var values = shown(JSON.parse(event.data));
    Object.keys(values).forEach(function (key) {
      var cell = document.querySelector('[data-now="' + key + '"]');
      if (cell && cell.textContent !== values[key]) cell.textContent = values[key];
    });
    var gen = document.querySelector("header .gen");
    if (gen) gen.textContent = values.served === "—" ? "" : values.served;
  };
  window.addEventListener("pagehide", function () { feed.close(); });
}());

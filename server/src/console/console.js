// The console's one script. Without it every page still works: times stay in UTC and
// the list of pauses updates on reload.
"use strict";
function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.dateTime);
    if (!isNaN(d)) {
      t.textContent = d.toLocaleString([], { month: "short", day: "numeric", hour: "numeric", minute: "2-digit", second: "2-digit" });
    }
  }
}
localTimes(document);
// The live list: the server sends the rows again whenever this project's pauses change.
const rows = document.getElementById("pause-rows");
if (rows && rows.dataset.live && window.EventSource) {
  const events = new EventSource(rows.dataset.live);
  events.addEventListener("rows", (e) => {
    rows.innerHTML = e.data;
    localTimes(rows);
  });
}

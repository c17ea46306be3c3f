// The built-in UI's only script: sortable tables and the live decision feed.
// Text from the server is only ever set with textContent, never parsed as HTML.
"use strict";

function sortBy(header) {
  const table = header.closest("table");
  const column = Array.from(header.parentNode.children).indexOf(header);
  const numeric = header.dataset.sort === "number";
  const descending = header.dataset.direction !== "desc";
  header.dataset.direction = descending ? "desc" : "asc";
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
    const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
    return descending ? -order : order;
  });
  rows.forEach((row) => body.appendChild(row));
}

function applyDecision(event, changed) {
  const row = document.querySelector(`tr[data-id="${CSS.escape(event.id)}"]`);
  if (row) {
    const decision = row.querySelector("td.decision");
    decision.textContent = event.decision;
    decision.className = "decision " + event.decision;
    decision.dataset.value = String(["monitor", "warn", "critical"].indexOf(event.decision));
    const risk = row.querySelector("td.risk");
    risk.textContent = Math.round(event.risk * 100) + "%";
    risk.dataset.value = String(event.risk);
  }
  if (changed && document.body.dataset.entity === event.id) {
    location.reload();  // this entity's decision changed: show the new explanation
  }
}

function connect() {
  const live = document.getElementById("live");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/v1/decisions`);
  socket.onopen = () => { live.textContent = "live updates: on"; };
  socket.onclose = () => {
    live.textContent = "live updates: reconnecting…";
    setTimeout(connect, 5000);
  };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "decision" || event.type === "current") {
      applyDecision(event, event.type === "decision");
      live.textContent = `live updates: on (last: ${event.labels ? Object.values(event.labels).join(", ") : ""} ${event.decision})`;
    }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("th[data-sort]").forEach((header) => {
    header.addEventListener("click", () => sortBy(header));
  });
  connect();
});

// Zonda's UI: live updates by short polling of the JSON API (same session cookie), no page reloads.
"use strict";

const POLL_MS = 1500;
const STATE_ORDER = ["failed", "upstream_failed", "up_for_retry", "running", "queued", "scheduled", "pending", "success", "skipped"];
const FINISHED = new Set(["success", "failed"]);

function summaryState(counts) {
  for (const s of STATE_ORDER) if (counts[s]) return s;
  return Object.keys(counts)[0] || "none";
}

function countsLabel(counts) {
  return Object.entries(counts)
    .sort((a, b) => STATE_ORDER.indexOf(a[0]) - STATE_ORDER.indexOf(b[0]))
    .map(([s, n]) => `${n} ${s}`).join(", ");
}

function setState(el, state) {
  for (const c of [...el.classList]) if (c.startsWith("s-")) el.classList.remove(c);
  el.classList.add(`s-${state}`);
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

// Task states of a run: graph nodes, the task table and the run's badge follow the API's record.
function applyRun(run) {
  const counts = {};
  for (const t of run.tasks) {
    counts[t.task_id] = counts[t.task_id] || {};
    counts[t.task_id][t.state] = (counts[t.task_id][t.state] || 0) + 1;
  }
  let changed = false;
  for (const node of document.querySelectorAll("svg.graph .node[data-task]")) {
    const c = counts[node.dataset.task];
    if (!c) continue;
    const state = summaryState(c);
    if (!node.classList.contains(`s-${state}`)) { setState(node, state); changed = true; }
    const sub = node.querySelector("text.sub");
    const mapped = sub && sub.textContent.includes("mapped") ? " · mapped" : "";
    if (sub) sub.textContent = countsLabel(c).slice(0, 30) + mapped;
    const title = node.querySelector("title");
    if (title) title.textContent = `${node.dataset.task}: ${countsLabel(c)}`;
  }
  for (const row of document.querySelectorAll("tr[data-task-row]")) {
    const c = counts[row.dataset.taskRow];
    const cell = row.querySelector("[data-counts]");
    if (!c || !cell) continue;
    const label = cell.textContent.includes(" ") || Object.values(c).reduce((a, b) => a + b, 0) > 1 ? countsLabel(c) : summaryState(c);
    if (cell.textContent !== label) { cell.textContent = label; setState(cell, summaryState(c)); changed = true; }
  }
  const badge = document.getElementById("run-state");
  if (badge && badge.dataset.state !== run.state) {
    badge.dataset.state = run.state; badge.textContent = run.state; setState(badge, run.state); changed = true;
  }
  return changed;
}

// Parts of the page drawn on the server (Gantt, task table, facts, actions) are re-read from the
// page's own URL and swapped in place when the run changed. False when they could not be re-read.
async function refreshParts() {
  const parts = document.querySelectorAll("[data-live-part][id]");
  if (!parts.length) return true;
  const response = await fetch(location.pathname + location.search, { credentials: "same-origin" });
  if (!response.ok) return false;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const part of parts) {
    const next = fresh.getElementById(part.id);
    if (next) part.replaceWith(document.importNode(next, true));
  }
  return true;
}

function pollRun(runId) {
  let finished = false;
  let stale = false;
  const tick = async () => {
    try {
      const run = await getJSON(`/api/v1/runs/${encodeURIComponent(runId)}`);
      if (applyRun(run)) stale = true;
      if (stale) stale = !(await refreshParts());
      finished = FINISHED.has(run.state) && !(run.pending_commands || []).length && !stale;
    } catch (err) {
      console.warn("live update failed", err);
    }
    if (!finished) setTimeout(tick, POLL_MS);
    document.body.dataset.live = finished ? "done" : "polling";
  };
  tick();
  return () => finished;
}

// A task's log: re-read while the task runs, keep the view at the bottom if it was there.
function tailLog(pre, runDone) {
  let lastRound = false;
  const tick = async () => {
    try {
      const response = await fetch(pre.dataset.src, { credentials: "same-origin" });
      if (response.ok) {
        const text = await response.text();
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        if (text && text !== pre.textContent) { pre.textContent = text; if (atBottom) pre.scrollTop = pre.scrollHeight; }
      }
    } catch (err) {
      console.warn("log tail failed", err);
    }
    if (lastRound) return;
    if (runDone()) lastRound = true;
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}

// A page showing a JSON resource (the system page): poll it, and redraw the page's parts on change.
function pollResource(url) {
  let last = null;
  const tick = async () => {
    try {
      const text = JSON.stringify(await getJSON(url));
      if (last !== null && text !== last) await refreshParts();
      last = text;
    } catch (err) {
      console.warn("live update failed", err);
    }
    setTimeout(tick, 2 * POLL_MS);
  };
  setTimeout(tick, 2 * POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  const resource = document.getElementById("live-poll");
  if (resource && resource.dataset.pollUrl) pollResource(resource.dataset.pollUrl);
  const live = document.getElementById("run-live");
  const graph = document.querySelector("svg.graph[data-run]");
  const badge = document.getElementById("run-state");
  let runDone = () => true;
  if (live && live.dataset.active === "true") {
    runDone = pollRun(live.dataset.run);
  } else if (!live && graph && badge && !FINISHED.has(badge.dataset.state)) {
    runDone = pollRun(graph.dataset.run);
  }
  const log = document.getElementById("log");
  if (log && log.dataset.src && log.dataset.live === "true") tailLog(log, runDone);
});

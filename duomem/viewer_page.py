"""The trajectory viewer's page: plain HTML, CSS and JavaScript, no external assets. duomem.viewer fills
__TITLE__ and __DATA__ (the episodes as JSON). Text is inserted with textContent, never as markup."""

PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 72em; }
h1 { font-size: 1.3em; margin-bottom: 0.2em; }
#meta { color: #555; margin-bottom: 1em; }
#filters { position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #ddd; z-index: 1; }
#filters label { margin-right: 1em; }
details.episode { border: 1px solid #ccc; border-radius: 4px; margin: 0.4em 0; padding: 0.3em 0.6em; }
details.episode > summary { cursor: pointer; }
.badge { display: inline-block; min-width: 3.2em; text-align: center; border-radius: 3px; padding: 0 0.3em;
         font-weight: bold; color: #fff; margin-right: 0.4em; }
.won { background: #2e7d32; } .lost { background: #c62828; }
.part { margin: 0.5em 0 0.5em 0.5em; }
.part > summary, .part > .label { font-weight: bold; cursor: pointer; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f6f6; padding: 0.4em; margin: 0.2em 0; }
.msg-user pre { background: #eef3fb; } .msg-assistant pre { background: #f3f9ee; }
.memory { background: #fff8e1; }
ol.turns > li { margin-bottom: 0.5em; }
.thought { color: #444; font-style: italic; } .action { font-family: monospace; font-weight: bold; }
.obs { font-family: monospace; color: #333; } .flag { color: #c62828; font-size: 0.85em; margin-left: 0.5em; }
.outcome { font-weight: bold; margin: 0.5em 0; }
</style>
</head>
<body>
<h1 id="title"></h1>
<div id="meta"></div>
<details class="part" id="system-part"><summary>&#10102; System prompt (the same for every episode)</summary><pre id="system"></pre></details>
<div id="filters">
<label>Task type <select id="type-filter"><option value="">all</option></select></label>
<label>Outcome <select id="outcome-filter"><option value="">all</option><option value="won">won</option><option value="lost">lost</option></select></label>
<label>Search <input id="search" type="search" placeholder="task id or text"></label>
<span id="count"></span>
</div>
<div id="episodes"></div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function pre(text, cls) { const p = el("pre", cls ? {class: cls} : {}, text); return p; }

function messages(list) {
  const box = el("div");
  for (const m of list) {
    const d = el("div", {class: "msg-" + m.role});
    d.append(el("div", {class: "label"}, m.role), pre(m.content));
    box.append(d);
  }
  return box;
}

function part(title, body, open) {
  const d = el("details", {class: "part"});
  if (open) d.open = true;
  d.append(el("summary", {}, title), body);
  return d;
}

function episodeBody(ep) {
  const body = el("div");
  if (ep.reference) {
    body.append(part("\u2777 Reference trajectory (" + ep.task_type + ")", messages(DATA.references[ep.task_type] || [])));
  } else {
    body.append(el("div", {class: "part"}, "\u2777 Reference trajectory: none in this configuration"));
  }
  const first = el("div", {class: "msg-user"});
  first.append(pre(ep.first_user_observation, "first-user"));
  if (ep.first_user_memory) {
    first.append(el("div", {class: "label"}, ep.scripts.length + " retrieved memory scripts (same message, continued)"),
      pre(ep.first_user_memory, "memory"));
  }
  body.append(part("\u2778 First user message: environment, task" + (ep.scripts.length ? ", memory scripts" : ""), first, true));
  const ol = el("ol", {class: "turns"});
  for (const t of ep.turns) {
    const li = el("li", {class: "turn"});
    if (t.thinking) li.append(part("thinking (" + t.thinking.length + " characters)", pre(t.thinking)));
    li.append(el("div", {class: "thought"}, "Thought: " + t.thought));
    const a = el("div", {class: "action"}, "Action: " + (t.action || "(none parsed)"));
    if (t.problem) a.append(el("span", {class: "flag"}, t.problem));
    if (!t.admissible) a.append(el("span", {class: "flag"}, "not admissible"));
    li.append(a, el("div", {class: "obs"}, "Observation: " + t.observation));
    if (t.completion) {
      li.append(part("raw completion", pre(t.completion)));
    }
    ol.append(li);
  }
  body.append(part("\u2779 Episode: " + ep.turns.length + " turns", ol, true));
  body.append(el("div", {class: "outcome"}, ep.won ? "Won in " + ep.steps + " steps (" + ep.seconds + " s)"
    : "Lost after " + ep.steps + " steps (" + ep.seconds + " s)"));
  return body;
}

function render() {
  const meta = DATA.meta, s = meta.summary || {};
  document.getElementById("title").textContent = meta.title;
  const bits = ["model " + meta.model, "adapter " + meta.adapter, "memory " + meta.memory, "split " + meta.split,
    "step limit " + meta.max_steps];
  if (s.n !== undefined) bits.push("success " + s.success_pct + "% [" + s.ci_low_pct + ", " + s.ci_high_pct +
    "] (" + s.successes + "/" + s.n + "), mean steps " + s.mean_steps);
  document.getElementById("meta").textContent = bits.join(" \u00b7 ");
  document.getElementById("system").textContent = DATA.system;
  const types = [...new Set(DATA.episodes.map(e => e.task_type))].sort();
  const sel = document.getElementById("type-filter");
  for (const t of types) sel.append(el("option", {value: t}, t));
  const box = document.getElementById("episodes");
  for (const ep of DATA.episodes) {
    const d = el("details", {class: "episode", "data-type": ep.task_type, "data-outcome": ep.won ? "won" : "lost",
      "data-search": (ep.task_id + " " + ep.task).toLowerCase()});
    const sum = el("summary");
    sum.append(el("span", {class: "badge " + (ep.won ? "won" : "lost")}, ep.won ? "won" : "lost"),
      el("span", {class: "task"}, ep.task + " \u2014 " + ep.task_type + ", " + ep.steps + " steps, " +
        ep.invalid_steps + " invalid \u2014 " + ep.task_id));
    d.append(sum);
    d.addEventListener("toggle", () => { if (d.open && d.childElementCount === 1) d.append(episodeBody(ep)); });
    box.append(d);
  }
  applyFilters();
}

function applyFilters() {
  const type = document.getElementById("type-filter").value;
  const outcome = document.getElementById("outcome-filter").value;
  const q = document.getElementById("search").value.trim().toLowerCase();
  let shown = 0;
  const all = document.querySelectorAll("details.episode");
  for (const d of all) {
    const ok = (!type || d.dataset.type === type) && (!outcome || d.dataset.outcome === outcome) &&
      (!q || d.dataset.search.includes(q));
    d.hidden = !ok;
    if (ok) shown++;
  }
  document.getElementById("count").textContent = shown + " of " + all.length + " episodes";
}

for (const id of ["type-filter", "outcome-filter"]) document.getElementById(id).addEventListener("change", applyFilters);
document.getElementById("search").addEventListener("input", applyFilters);
render();
</script>
</body>
</html>
"""

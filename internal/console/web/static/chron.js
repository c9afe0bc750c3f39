// The Chron explorer's live tail, loaded only on /chron. The page works
// without it; with it, "Follow live" opens the read API's tail (server-
// sent events, the page's filters, starting after the first page) and
// puts each new row on top. Rows are built with textContent only: every
// field comes from agents or people.
"use strict";

window.claiimChron = function () {
  const table = document.getElementById("chron-rows");
  const button = document.getElementById("chron-live");
  const status = document.getElementById("chron-live-status");
  if (!table || !button || !table.dataset.tailUrl) return;
  const body = table.tBodies[0];
  const shown = new Set(Array.from(body.querySelectorAll("tr.row"), (tr) => tr.dataset.id));
  let source = null;
  let last = ""; // the cursor after the last row shown: a resumed tail starts there

  const say = (text) => { status.textContent = text; };

  function cell(tr, text, cls) {
    const td = tr.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function prepend(e) {
    if (shown.has(e.id)) return;
    shown.add(e.id);
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();

    const row = document.createElement("tr");
    row.className = "row new";
    row.dataset.id = e.id;
    cell(row, String(e.time).replace(/\.\d+/, ""), "nowrap");
    cell(row, e.kind, "mono");
    cell(row, e.agent_name ? `${e.agent_namespace}/${e.agent_name}` : e.actor, e.agent_name ? "mono" : "");
    cell(row, e.org || "—");
    cell(row, e.action, "mono");
    const outcome = document.createElement("span");
    outcome.className = e.outcome;
    outcome.textContent = e.outcome;
    cell(row, "").appendChild(outcome);
    cell(row, e.reason, "mono");
    cell(row, e.anchor || "—");
    cell(row, (e.policies || []).map((p) => `${p.name}@${p.version}`).join(", ") || "—", "mono");
    cell(row, e.skill_version_id || "—", "mono");

    const detail = document.createElement("tr");
    detail.className = "detail new";
    detail.dataset.id = e.id;
    const td = cell(detail, "");
    td.colSpan = 10;
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = e.kind === "decision" ? "Whole decision" : "Whole row";
    const pre = document.createElement("pre");
    pre.className = "context";
    pre.textContent = JSON.stringify(e, null, 2);
    const link = document.createElement("a");
    link.href = "/chron/" + encodeURIComponent(e.id);
    link.textContent = "Open this row";
    details.append(summary, link, pre);
    td.appendChild(details);

    body.prepend(row, detail);
  }

  function start() {
    const url = new URL(table.dataset.tailUrl, window.location.href);
    if (last) url.searchParams.set("cursor", last);
    source = new EventSource(url.pathname + url.search);
    button.textContent = "Pause";
    say("connecting…");
    source.addEventListener("open", () => say("following new rows"));
    source.addEventListener("entry", (ev) => {
      prepend(JSON.parse(ev.data));
      last = ev.lastEventId;
    });
    // The server's own error event carries a message; the browser's has
    // none and reconnects by itself from the last event id.
    source.addEventListener("error", (ev) => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (the session ended, or too many tails): no retry.
        source = null;
        button.textContent = "Follow live";
        say("stopped: reload the page to follow again");
        return;
      }
      say(ev.data ? JSON.parse(ev.data) : "reconnecting…");
    });
  }

  function stop() {
    source.close();
    source = null;
    button.textContent = "Follow live";
    say("paused");
  }

  button.hidden = false;
  button.addEventListener("click", () => (source ? stop() : start()));
};

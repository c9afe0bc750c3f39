// The console's only script (CSP: script-src 'self', no inline script).
// Pages work without it; it adds countdowns, the Chron live tail and
// load-more, and copy buttons.
"use strict";

function countdowns() {
  for (const el of document.querySelectorAll("[data-expires]")) {
    const end = Date.parse(el.dataset.expires);
    if (isNaN(end)) continue;
    const tick = () => {
      const s = Math.max(0, Math.round((end - Date.now()) / 1000));
      el.textContent = s === 0 ? "expired" : `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s left`;
      if (s > 0) setTimeout(tick, 1000);
    };
    tick();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  countdowns();
  if (window.claiimChron) window.claiimChron();
});

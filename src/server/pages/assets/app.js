// gotorrent-http: small enhancements over pages that work without JavaScript.
"use strict";

// Copy buttons: the text is in data-copy.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(button.dataset.copy);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => { button.textContent = label; }, 1500);
});

// The listing: filter rows as you type, and keep live seeder counts fresh.
const filter = document.getElementById("q");
const rows = Array.from(document.querySelectorAll("table.torrents tbody tr"));
if (filter && rows.length) {
  filter.addEventListener("input", () => {
    const needle = filter.value.trim().toLowerCase();
    for (const row of rows) row.hidden = needle !== "" && !row.dataset.name.includes(needle);
  });
}
const counts = document.querySelectorAll("td.seeders[data-v2]");
if (counts.length) {
  setInterval(async () => {
    try {
      const response = await fetch("/torrents", { headers: { accept: "application/json" } });
      if (!response.ok) return;
      const seeders = new Map((await response.json()).map((t) => [t.info_hash_v2, t.seeders]));
      for (const cell of counts) {
        if (seeders.has(cell.dataset.v2)) cell.textContent = String(seeders.get(cell.dataset.v2));
      }
    } catch {
      // Offline for a moment: the next tick tries again.
    }
  }, 10000);
}

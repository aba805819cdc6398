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

// Sharing: the file streams from disk to PUT /files/{name} (XMLHttpRequest reports upload
// progress), then the page waits for the server to hash it and links its page.
const uploadForm = document.getElementById("upload");
if (uploadForm) {
  const input = document.getElementById("file");
  const token = document.getElementById("token");
  const bar = uploadForm.querySelector("progress");
  const status = uploadForm.querySelector(".status");
  const zone = uploadForm.querySelector(".drop");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
  uploadForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.files.length) upload(input.files[0]);
  });

  function upload(file) {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", "/files/" + encodeURIComponent(file.name));
    if (token && token.value) xhr.setRequestHeader("Authorization", "Bearer " + token.value);
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      bar.max = e.total;
      bar.value = e.loaded;
      status.textContent = `Uploading ${file.name}: ${Math.floor((100 * e.loaded) / e.total)}%`;
    };
    xhr.onload = async () => {
      if (xhr.status !== 201) {
        let message = xhr.statusText;
        try { message = JSON.parse(xhr.responseText).message; } catch { /* not JSON */ }
        status.textContent = `Upload refused: ${message}`;
        return;
      }
      status.textContent = `Uploaded ${file.name}; hashing it…`;
      const v2 = await listed(file.name);
      const link = document.createElement("a");
      link.id = "uploaded";
      link.href = `/t/${v2}`;
      link.textContent = file.name;
      status.replaceChildren("Shared: ", link);
    };
    xhr.onerror = () => { status.textContent = "Upload failed: the connection was lost"; };
    status.textContent = `Uploading ${file.name}…`;
    xhr.send(file);
  }

  async function listed(name) {
    for (;;) {
      const response = await fetch("/torrents", { headers: { accept: "application/json" } });
      if (response.ok) {
        const found = (await response.json()).find((t) => t.name === name);
        if (found) return found.info_hash_v2;
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
}

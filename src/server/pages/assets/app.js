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

// The listing: filter rows as you type (when every row is on this page; otherwise the form
// asks the server), and keep live seeder counts fresh.
const filter = document.getElementById("q");
const rows = Array.from(document.querySelectorAll("table.torrents tbody tr"));
if (filter && rows.length && !document.querySelector("nav.pages")) {
  filter.addEventListener("input", () => {
    const needle = filter.value.trim().toLowerCase();
    for (const row of rows) row.hidden = needle !== "" && !row.dataset.name.includes(needle);
  });
}
const counts = document.querySelectorAll("td.seeders[data-v2]");
if (counts.length) {
  setInterval(async () => {
    try {
      // This same page again: the server's counts for exactly the rows shown, one request.
      const response = await fetch(location.href, { headers: { accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const seeders = new Map(
        Array.from(fresh.querySelectorAll("td.seeders[data-v2]")).map((c) => [c.dataset.v2, c.textContent]),
      );
      for (const cell of counts) {
        if (seeders.has(cell.dataset.v2)) cell.textContent = seeders.get(cell.dataset.v2);
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
      bar.value = bar.max;
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

  // Once hashed, the file is listed: the newest torrents of that name, a page the server
  // serves at the same cost whatever it shares (and a 200 while it is still hashing).
  async function sharedAs(name) {
    const query = new URLSearchParams({ q: name, sort: "newest" });
    const response = await fetch("/?" + query, { headers: { accept: "text/html" } });
    if (!response.ok) return null;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const link = Array.from(page.querySelectorAll("table.torrents th a")).find((a) => a.textContent === name);
    return link ? link.getAttribute("href").replace("/t/", "") : null;
  }

  async function listed(name) {
    for (;;) {
      const v2 = await sharedAs(name);
      if (v2) return v2;
      // Hashing progress, from /health, while the server reads the new file.
      const health = await fetch("/health").then((r) => r.json()).catch(() => null);
      const hashing = health && health.hashing;
      if (hashing && hashing.name === name && hashing.total > 0) {
        bar.max = hashing.total;
        bar.value = hashing.done;
        status.textContent = `Uploaded ${name}; hashing it: ${Math.floor((100 * hashing.done) / hashing.total)}%`;
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
}

// Verified download: pieces from every live seeder at once, each checked against its BEP 52
// piece hash (the SHA-256 merkle root of its 16 KiB blocks) with WebCrypto before it is kept.
const verifiedForm = document.getElementById("verified");
if (verifiedForm) {
  const BLOCK = 16384;
  const status = document.getElementById("verify-status");
  const bar = verifiedForm.querySelector("progress");
  const hex = (s) => Uint8Array.from(s.match(/../g), (b) => parseInt(b, 16));
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const sha256 = async (data) => new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  const pair = (a, b) => { const both = new Uint8Array(64); both.set(a); both.set(b, 32); return sha256(both); };
  const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;

  // The piece's hash: its blocks' hashes padded with zero hashes to a power of two (the blocks
  // of a whole piece, or for a file of one piece the next power of two), hashed pairwise.
  async function pieceHash(data, pieceLength, fileLength) {
    const leaves = [];
    for (let at = 0; at < data.byteLength; at += BLOCK) {
      leaves.push(sha256(data.subarray(at, Math.min(at + BLOCK, data.byteLength))));
    }
    let nodes = await Promise.all(leaves);
    let width = fileLength <= pieceLength ? 2 ** Math.ceil(Math.log2(Math.max(nodes.length, 1))) : pieceLength / BLOCK;
    let pad = new Uint8Array(32);
    while (width > 1) {
      const next = [];
      for (let i = 0; i < nodes.length; i += 2) next.push(pair(nodes[i], nodes[i + 1] ?? pad));
      nodes = await Promise.all(next);
      pad = await pair(pad, pad);
      width /= 2;
    }
    return nodes[0] ?? pad;
  }

  verifiedForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = verifiedForm.querySelector("button");
    button.disabled = true;
    try {
      await download();
    } catch (e) {
      status.textContent = `Download failed: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  });

  async function download() {
    const v2 = verifiedForm.dataset.v2;
    const name = verifiedForm.dataset.name;
    let sink = null;
    if (document.getElementById("to-disk").checked && window.showSaveFilePicker) {
      const handle = await window.showSaveFilePicker({ suggestedName: name });
      sink = await handle.createWritable();
    }
    const manifest = await (await fetch(`/torrents/${v2}/manifest`)).json();
    const peers = await (await fetch(`/peers?info_hash=${v2}`)).json();
    const seeders = peers.peers.map((p) => p.url.replace(/\/$/, ""));
    if (!seeders.length) throw new Error("no live seeder is known for this torrent");
    const { piece_length: pieceLength, length } = manifest;
    const hashes = manifest.piece_hashes.map(hex);
    const count = hashes.length;
    const pieces = new Array(count);
    const failed = new Map(); // seeder -> consecutive failures
    const badFrom = new Map(); // seeder -> pieces that failed verification
    const bad = [];
    let next = 0;
    let done = 0;
    let bytes = 0;
    const started = performance.now();
    const retry = [];
    const show = () => {
      bar.max = length;
      bar.value = bytes;
      const rate = bytes / 1048576 / ((performance.now() - started) / 1000);
      const badText = bad.length ? `, ${bad.length} bad piece${bad.length > 1 ? "s" : ""} fetched again (${bad.join("; ")})` : "";
      status.textContent = `${mib(bytes)} of ${mib(length)} from ${seeders.length} seeders, ${rate.toFixed(1)} MiB/s${badText}`;
    };

    async function worker(slot) {
      for (;;) {
        const job = retry.shift() ?? (next < count ? { index: next++, avoid: new Set() } : null);
        if (!job) return;
        const usable = seeders.filter((s) => !job.avoid.has(s) && (failed.get(s) ?? 0) < 3);
        if (!usable.length) throw new Error(`no seeder left that can send piece ${job.index}`);
        const seeder = usable[(job.index + slot) % usable.length];
        let data;
        try {
          const response = await fetch(`${seeder}/chunks/${v2}/${job.index}`);
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          data = new Uint8Array(await response.arrayBuffer());
        } catch {
          failed.set(seeder, (failed.get(seeder) ?? 0) + 1);
          retry.push(job);
          continue;
        }
        failed.set(seeder, 0);
        const offset = job.index * pieceLength;
        const expected = Math.min(pieceLength, length - offset);
        if (data.byteLength !== expected || !same(await pieceHash(data, pieceLength, length), hashes[job.index])) {
          bad.push(`piece ${job.index} from ${seeder}`);
          job.avoid.add(seeder);
          // As the CLI does: three bad pieces and a seeder is not asked again.
          badFrom.set(seeder, (badFrom.get(seeder) ?? 0) + 1);
          if (badFrom.get(seeder) >= 3) failed.set(seeder, 3);
          retry.push(job);
          show();
          continue;
        }
        if (sink) await sink.write({ type: "write", position: offset, data });
        else pieces[job.index] = data;
        done += 1;
        bytes += data.byteLength;
        show();
      }
    }
    // Six requests in flight over all seeders.
    await Promise.all([0, 1, 2, 3, 4, 5].map(worker));
    if (done !== count) throw new Error(`only ${done} of ${count} pieces arrived`);
    const seconds = (performance.now() - started) / 1000;
    const summary = `Verified ${count} pieces (${mib(length)}) in ${seconds.toFixed(2)} s, ${(length / 1048576 / seconds).toFixed(1)} MiB/s from ${seeders.length} seeders`;
    const badText = bad.length ? `; ${bad.length} bad piece${bad.length > 1 ? "s" : ""} fetched again: ${bad.join("; ")}` : "";
    if (sink) {
      await sink.close();
      status.textContent = `${summary}${badText}. Saved.`;
      return;
    }
    const link = document.createElement("a");
    link.id = "verified-file";
    link.href = URL.createObjectURL(new Blob(pieces, { type: "application/octet-stream" }));
    link.download = name;
    link.textContent = `Save ${name}`;
    link.dataset.seconds = String(seconds);
    status.replaceChildren(`${summary}${badText}. `, link);
  }
}

// The download page. Design:
// - The row count is checked here with the API's own rules, so a typo never costs a request.
// - The file is fetched by navigating a hidden iframe to /exports/report: the browser's download
//   manager streams it to disk (never into page memory), and an error answer (JSON, not an
//   attachment) just loads inside the hidden frame instead of replacing this page.
// - A navigation cannot send headers, so before each download the page asks the BFF for a
//   ticket (POST /exports/ticket): an id the BFF issues and sets in a short-lived cookie, which
//   the download request carries. The BFF uses it as the request id and reports the download's
//   state at /exports/status/<id> (waiting, streaming, completed, failed, aborted, cancelled),
//   which the page polls. That is how an error (400, 429, 502, ...) becomes a readable message
//   here. Only ids the BFF issued are tracked, so nobody can read or overwrite another's.
"use strict";

(() => {
  const form = document.getElementById("export-form");
  const input = document.getElementById("row-count");
  const button = document.getElementById("download");
  const list = document.getElementById("downloads");
  const rowError = document.getElementById("row-error");
  const maxRows = Number(form.dataset.maxRows);
  const POLL_MS = 400;
  // How long the page waits for the BFF to see the download request at all.
  const PICKUP_MS = 15000;
  const numberFormat = new Intl.NumberFormat("en-US");

  document.getElementById("max-rows").textContent = numberFormat.format(maxRows);

  // Same rules as the API: a base-10 whole number from 1 to the maximum. Thousands separators
  // typed by a person ("30,000") are accepted and removed; nothing else is.
  function checkRowCount(raw) {
    const text = raw.trim().replace(/,(?=\d{3}(\D|$))/g, "");
    if (text === "") return { error: "Enter the number of rows to export." };
    if (!/^[0-9]+$/.test(text)) {
      return { error: "The number of rows must be a whole number, like 30000." };
    }
    const value = Number(text);
    if (value < 1) return { error: "The number of rows must be at least 1." };
    if (value > maxRows) {
      return { error: `The number of rows can be at most ${numberFormat.format(maxRows)}.` };
    }
    return { value };
  }

  // A download ticket from the BFF; its answer also sets the cookie the download will carry.
  async function newTicket() {
    const response = await fetch("/exports/ticket", { method: "POST", cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return (await response.json()).id;
  }

  function megabytes(n) {
    if (n < 1048576) return `${Math.max(1, Math.round(n / 1024))} KB`;
    return `${(n / 1048576).toFixed(n < 10485760 ? 1 : 0)} MB`;
  }

  function show(item, kind, text) {
    item.className = `state ${kind}`;
    item.textContent = text;
  }

  function describe(status, rows) {
    const what = `${numberFormat.format(rows)} rows`;
    switch (status.state) {
      case "waiting":
        return ["pending", `${what}: preparing the report (the database is running the query)…`];
      case "streaming":
        return ["pending", `${what}: downloading, ${megabytes(status.bytes)} so far. ` +
          "Your browser's download list shows the file."];
      case "completed":
        return ["completed", `${what}: finished, ${megabytes(status.bytes)} saved by your browser.`];
      case "failed": {
        const message = status.error ? status.error.message : "The server refused the request.";
        return ["failed", `${what}: not downloaded. ${message} (HTTP ${status.status})`];
      }
      case "aborted":
        return ["failed", `${what}: the transfer broke off part-way, so the partial file is ` +
          "incomplete. Please try again."];
      case "cancelled":
        return ["failed", `${what}: the download was cancelled before it finished.`];
      default:
        return ["pending", `${what}: ${status.state}`];
    }
  }

  function track(id, rows, item, frame) {
    const started = Date.now();
    let failures = 0;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        button.disabled = false;
      }
    };
    const finish = () => {
      release();
      // The download manager owns a started file; the frame is no longer needed.
      setTimeout(() => frame.remove(), 1000);
    };
    const poll = async () => {
      let response;
      try {
        response = await fetch(`/exports/status/${id}`, { cache: "no-store" });
      } catch {
        failures += 1;
        if (failures > 5) {
          show(item, "failed", "Lost contact with the server; check your browser's download list.");
          finish();
          return;
        }
        setTimeout(poll, POLL_MS * failures);
        return;
      }
      if (response.status === 404) {
        if (Date.now() - started > PICKUP_MS) {
          show(item, "failed", "The server did not receive the download request. Please try again.");
          finish();
          return;
        }
        setTimeout(poll, POLL_MS);
        return;
      }
      const status = await response.json();
      const [kind, text] = describe(status, rows);
      show(item, kind, text);
      // Once the server has the request, the cookie is spent: another download may start.
      release();
      if (status.state === "waiting" || status.state === "streaming") {
        setTimeout(poll, POLL_MS);
      } else {
        finish();
      }
    };
    setTimeout(poll, 150);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const checked = checkRowCount(input.value);
    if (checked.error) {
      input.setAttribute("aria-invalid", "true");
      rowError.textContent = checked.error;
      rowError.hidden = false;
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    rowError.hidden = true;
    const item = document.createElement("li");
    list.prepend(item);
    show(item, "pending", `${numberFormat.format(checked.value)} rows: requesting…`);
    button.disabled = true;
    let id;
    try {
      id = await newTicket();
    } catch {
      show(item, "failed", "Could not reach the server. Please try again.");
      button.disabled = false;
      return;
    }
    item.dataset.requestId = id;
    const frame = document.createElement("iframe");
    frame.hidden = true;
    frame.title = "download";
    frame.src = `/exports/report?rowCount=${checked.value}`;
    document.body.append(frame);
    track(id, checked.value, item, frame);
  });
})();

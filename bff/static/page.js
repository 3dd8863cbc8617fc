// The download page. Design:
// - The reports and their parameters come from the catalog (GET /reports, relayed by the BFF
//   from the API). The chosen report's form is built from its parameter types: number inputs
//   with min/max/step, date and date-time pickers, selects for enums and true/false, text
//   inputs with maxlength; labels, help, required markers and defaults from the catalog.
// - The choice and the values live in the URL's fragment (#report=sales&from=2024-01-01&...):
//   a link reproduces a filled form, and choosing another report is a history entry, so the
//   back button returns to the previous one. (A parameter that is itself named "report" is
//   the fragment's second "report".)
// - Values are checked here with the API's own rules and messages (server/params.py and
//   server/catalog.py), so a typo never costs a request; the API still decides, and its 400
//   message is shown when it disagrees (a catalog changed since the page loaded, say).
// - The file is fetched by navigating a hidden iframe to /exports/<id>?<query>: the browser's
//   download manager streams it to disk (never into page memory), and an error answer (JSON,
//   not an attachment) just loads inside the hidden frame instead of replacing this page.
// - A navigation cannot send headers, so before each download the page asks the BFF for a
//   ticket (POST /exports/ticket): an id the BFF issues and sets in a short-lived cookie, which
//   the download request carries. The BFF uses it as the request id and reports the download's
//   state at /exports/status/<id> (waiting, streaming, completed, failed, aborted, cancelled),
//   with the bytes relayed and the rows the API has read, which the page polls to draw the
//   progress bar. Only ids the BFF issued are tracked, so nobody can read another's.
"use strict";

(() => {
  const form = document.getElementById("export-form");
  const choices = document.getElementById("report-choices");
  const fieldsBox = document.getElementById("parameters");
  const legend = document.getElementById("parameters-legend");
  const requiredNote = document.getElementById("required-note");
  const button = document.getElementById("download");
  const formAlert = document.getElementById("form-alert");
  const catalogStatus = document.getElementById("catalog-status");
  const downloadsSection = document.getElementById("downloads-section");
  const list = document.getElementById("downloads");
  const announcer = document.getElementById("announcer");
  const POLL_MS = 400;
  // How long the page waits for the BFF to see the download request at all.
  const PICKUP_MS = 15000;
  const numberFormat = new Intl.NumberFormat("en-US");

  let reports = [];
  let current = null; // the report whose form is shown
  const remembered = new Map(); // report id -> its values as last typed, for switching back
  let downloadCount = 0;

  // -- the API's rules, as server/params.py and server/catalog.py state them ----------------

  const INT_RANGES = {
    int: [-(2n ** 31n), 2n ** 31n - 1n],
    bigint: [-(2n ** 63n), 2n ** 63n - 1n],
  };
  const DATE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;
  const DATETIME =
    /^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?$/;
  const DECIMAL = /^(-?)([0-9]+)(?:\.([0-9]+))?$/;
  const BITS = { true: true, 1: true, false: false, 0: false };

  function typeRule(p) {
    switch (p.type) {
      case "int":
      case "bigint":
        return "a whole number";
      case "decimal": {
        const before = `a number with at most ${p.precision - p.scale} digits before the point`;
        return before + (p.scale ? ` and ${p.scale} after it` : " and none after it");
      }
      case "bit":
        return "true or false";
      case "date":
        return "a date (YYYY-MM-DD)";
      case "datetime2":
        return "a date and time (YYYY-MM-DDTHH:MM:SS)";
      case "nvarchar":
        return `text of at most ${numberFormat.format(p.maxLength)} characters`;
      case "enum":
        return "one of " + p.values.join(", ");
      default:
        return "a valid value";
    }
  }

  // A bound as the API's messages show it: integers with thousands separators, the rest as
  // the catalog describes them.
  function shown(p, value) {
    if (p.type === "int" || p.type === "bigint") return BigInt(value).toLocaleString("en-US");
    return String(value);
  }

  function bounds(p) {
    const low = p.min === undefined ? null : shown(p, p.min);
    const high = p.max === undefined ? null : shown(p, p.max);
    if (low !== null && high !== null) return ` from ${low} to ${high}`;
    if (low !== null) return ` of at least ${low}`;
    if (high !== null) return ` of at most ${high}`;
    return "";
  }

  // The API's message for a value that breaks the parameter's rule.
  function ruleMessage(p) {
    return `${p.name} must be ${typeRule(p)}${bounds(p)}`;
  }

  function realDate(text) {
    const m = DATE.exec(text);
    if (!m) return false;
    const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (year < 1 || month < 1 || month > 12 || day < 1) return false;
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
    return day <= days;
  }

  // A decimal's text (the catalog's bounds may be in exponent form) as an integer of `scale`
  // digits after the point, for exact comparisons.
  function scaled(text, scale) {
    const m = /^(-?)([0-9]+)(?:\.([0-9]*))?(?:[eE]([-+]?[0-9]+))?$/.exec(String(text));
    if (!m) return null;
    let digits = m[2] + (m[3] || "");
    let exponent = Number(m[4] || 0) - (m[3] || "").length + scale;
    if (exponent >= 0) digits += "0".repeat(exponent);
    else digits = digits.slice(0, exponent) || "0";
    return (m[1] ? -1n : 1n) * BigInt(digits);
  }

  // A date and time as one comparable string.
  function timeKey(text) {
    const m = DATETIME.exec(text);
    if (!m) return null;
    return `${m[1]}T${m[2]}:${m[3]}:${m[4] || "00"}.${(m[5] || "").padEnd(6, "0")}`;
  }

  // text -> {value} (comparable) or {error}; the same checks as the API's parser.
  function parseValue(p, text) {
    const invalid = { error: ruleMessage(p) };
    let value;
    switch (p.type) {
      case "int":
      case "bigint": {
        if (!/^-?[0-9]+$/.test(text)) return invalid;
        value = BigInt(text);
        const [low, high] = INT_RANGES[p.type];
        if (value < low || value > high) return invalid;
        return within(p, value, (b) => BigInt(b)) ? { value } : invalid;
      }
      case "decimal": {
        const m = DECIMAL.exec(text);
        if (!m) return invalid;
        const whole = m[2].replace(/^0+/, "");
        if (whole.length > p.precision - p.scale || (m[3] || "").length > p.scale) return invalid;
        value = scaled(text, p.scale);
        return within(p, value, (b) => scaled(b, p.scale)) ? { value } : invalid;
      }
      case "bit":
        return text in BITS ? { value: BITS[text] } : invalid;
      case "date":
        if (!realDate(text)) return invalid;
        return within(p, text, (b) => b) ? { value: text } : invalid;
      case "datetime2": {
        const m = DATETIME.exec(text);
        if (!m || (m[5] || "").length > Math.min(p.precision, 6)) return invalid;
        if (!realDate(m[1]) || Number(m[2]) > 23 || Number(m[3]) > 59 || Number(m[4] || 0) > 59) {
          return invalid;
        }
        value = timeKey(text);
        return within(p, value, timeKey) ? { value } : invalid;
      }
      case "nvarchar":
        // String length is UTF-16 code units, as SQL Server counts NVARCHAR.
        return text.length <= p.maxLength ? { value: text } : invalid;
      case "enum":
        return p.values.includes(text) ? { value: text } : invalid;
      default:
        return { value: text };
    }
  }

  function within(p, value, read) {
    if (p.min !== undefined && value < read(p.min)) return false;
    if (p.max !== undefined && value > read(p.max)) return false;
    return true;
  }

  // -- the form --------------------------------------------------------------------------------

  function fieldId(p) {
    return `p-${p.name}`;
  }

  // What is accepted, in words, under the help text.
  function acceptedHint(p) {
    switch (p.type) {
      case "int":
      case "bigint":
      case "decimal":
      case "date":
      case "datetime2":
        return capitalised(typeRule(p)) + bounds(p) + ".";
      case "nvarchar":
        return `At most ${numberFormat.format(p.maxLength)} characters.`;
      default:
        return "";
    }
  }

  function capitalised(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  // A catalog value (default, bound) as a form control holds it.
  function controlText(p, value) {
    if (value === undefined || value === null) return "";
    if (p.type === "bit") return value === true || value === "1" ? "true" : "false";
    if (p.type === "datetime2") return normaliseDateTime(String(value));
    return String(value);
  }

  // A date-time picker says 10:00:05.100; the API takes at most the declared fraction digits,
  // so trailing zeros (and an empty fraction) are dropped: the same instant, fewer digits.
  function normaliseDateTime(text) {
    return text.replace(/(\.[0-9]*?)0+$/, "$1").replace(/\.$/, "");
  }

  function option(value, text) {
    const element = document.createElement("option");
    element.value = value;
    element.textContent = text;
    return element;
  }

  function control(p) {
    let input;
    if (p.type === "enum" || p.type === "bit") {
      input = document.createElement("select");
      if (!p.required || p.default === undefined) {
        input.append(option("", p.required ? "Choose…" : "(not set)"));
      }
      if (p.type === "enum") {
        for (const value of p.values) input.append(option(value, value));
      } else {
        input.append(option("true", "Yes"), option("false", "No"));
      }
    } else {
      input = document.createElement("input");
      input.autocomplete = "off";
      switch (p.type) {
        case "int":
        case "bigint":
          input.type = "number";
          input.step = "1";
          input.inputMode = "numeric";
          break;
        case "decimal":
          input.type = "number";
          input.step = p.scale ? `0.${"0".repeat(p.scale - 1)}1` : "1";
          input.inputMode = "decimal";
          break;
        case "date":
          input.type = "date";
          break;
        case "datetime2":
          input.type = "datetime-local";
          input.step = p.precision ? String(10 ** -Math.min(p.precision, 3)) : "1";
          break;
        default:
          input.type = "text";
          input.spellcheck = false;
          if (p.maxLength !== undefined) input.maxLength = p.maxLength;
      }
      if (p.min !== undefined) input.min = controlText(p, p.min);
      if (p.max !== undefined) input.max = controlText(p, p.max);
    }
    input.id = fieldId(p);
    input.name = p.name;
    input.required = Boolean(p.required);
    input.setAttribute("aria-describedby", `${fieldId(p)}-help ${fieldId(p)}-error`);
    return input;
  }

  function renderForm(report, values) {
    current = report;
    notice("");
    legend.textContent = `Filters of “${report.title}”`;
    fieldsBox.replaceChildren();
    requiredNote.hidden = !report.parameters.some((p) => p.required);
    if (report.parameters.length === 0) {
      const none = document.createElement("p");
      none.className = "hint";
      none.textContent = "This report has no filters.";
      fieldsBox.append(none);
    }
    for (const p of report.parameters) {
      const field = document.createElement("div");
      field.className = "field";
      const label = document.createElement("label");
      label.htmlFor = fieldId(p);
      label.textContent = p.label || p.name;
      if (p.required) {
        const mark = document.createElement("span");
        mark.className = "required";
        mark.setAttribute("aria-hidden", "true");
        mark.textContent = " *";
        label.append(mark);
      }
      const input = control(p);
      const given = values.get(p.name);
      input.value = given !== undefined ? given : controlText(p, p.default);
      const help = document.createElement("p");
      help.className = "hint";
      help.id = `${fieldId(p)}-help`;
      help.textContent = [p.help, acceptedHint(p)].filter(Boolean).join(" ");
      const error = document.createElement("p");
      error.className = "field-error";
      error.id = `${fieldId(p)}-error`;
      field.append(label, input, help, error);
      fieldsBox.append(field);
    }
    for (const radio of choices.querySelectorAll("input")) {
      radio.checked = radio.value === report.id;
    }
    formAlert.textContent = "";
  }

  function inputOf(p) {
    return document.getElementById(fieldId(p));
  }

  function setError(p, message) {
    const input = inputOf(p);
    const error = document.getElementById(`${fieldId(p)}-error`);
    if (!input || !error) return;
    if (message) {
      input.setAttribute("aria-invalid", "true");
      error.textContent = message;
    } else {
      input.removeAttribute("aria-invalid");
      error.textContent = "";
    }
  }

  // The form's raw values: what the controls hold (a number field whose text is no number at
  // all holds "", with badInput set).
  function rawValues(report) {
    const values = new Map();
    for (const p of report.parameters) {
      const input = inputOf(p);
      let text = input.value;
      if (p.type === "datetime2") text = normaliseDateTime(text);
      values.set(p.name, { text, bad: Boolean(input.validity && input.validity.badInput) });
    }
    return values;
  }

  // Days from one ISO date to another, both counted (a span rule's measure).
  function spanDays(first, second) {
    const day = (iso) => Date.UTC(Number(iso.slice(0, 4)), Number(iso.slice(5, 7)) - 1, Number(iso.slice(8, 10)));
    return Math.round((day(second) - day(first)) / 86_400_000) + 1;
  }

  // The checks the API makes, in its order: each parameter (missing, invalid), then the rules
  // (a rule's message goes to its second parameter). Returns what to send and the errors.
  function check(report) {
    const raw = rawValues(report);
    const send = [];
    const errors = new Map();
    const typed = new Map(); // values the rules compare, defaults included as the API does
    for (const p of report.parameters) {
      const { text, bad } = raw.get(p.name);
      if (bad) {
        errors.set(p.name, ruleMessage(p));
      } else if (text === "") {
        if (p.required) errors.set(p.name, `${p.name} is required`);
        else if (p.default !== undefined) {
          typed.set(p.name, parseValue(p, controlText(p, p.default)).value);
        }
      } else {
        const parsed = parseValue(p, text);
        if (parsed.error) errors.set(p.name, parsed.error);
        else {
          send.push([p.name, text]);
          typed.set(p.name, parsed.value);
        }
      }
    }
    for (const rule of report.rules || []) {
      const first = typed.get(rule.first);
      const second = typed.get(rule.second);
      if (first === undefined || second === undefined || errors.has(rule.second)) continue;
      if (rule.kind === "span" ? spanDays(first, second) > rule.maxDays : first > second) {
        errors.set(rule.second, rule.message);
      }
    }
    return { send, errors };
  }

  // -- the URL's fragment ------------------------------------------------------------------------

  function readFragment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const ids = params.getAll("report");
    const report = reports.find((r) => r.id === ids[0]) || null;
    const values = new Map();
    if (report) {
      for (const p of report.parameters) {
        const all = p.name === "report" ? ids.slice(1) : params.getAll(p.name);
        if (all.length) values.set(p.name, all[0]);
      }
    }
    return { report, values, asked: ids[0] };
  }

  function fragmentOf(report) {
    const params = new URLSearchParams();
    params.append("report", report.id);
    const raw = rawValues(report);
    for (const p of report.parameters) {
      const { text } = raw.get(p.name);
      // An emptied field with a default stays empty in the link.
      if (text !== "" || p.default !== undefined) params.append(p.name, text);
    }
    return "#" + params.toString();
  }

  let shownFragment = null;

  function writeFragment(push) {
    const fragment = fragmentOf(current);
    shownFragment = fragment;
    if (fragment === location.hash) return;
    if (push) history.pushState(null, "", fragment);
    else history.replaceState(null, "", fragment);
  }

  function applyFragment() {
    if (location.hash === shownFragment) return;
    const { report, values, asked } = readFragment();
    const chosen = report || reports[0];
    if (!report && current !== null) remember();
    renderForm(chosen, report ? values : remembered.get(chosen.id) || new Map());
    shownFragment = location.hash;
    if (asked !== undefined && !report) {
      notice(`There is no report “${asked}”; showing “${chosen.title}”.`);
    }
  }

  // A note above the form (the catalog's status line, free once the catalog is loaded).
  function notice(text) {
    catalogStatus.className = "state pending";
    catalogStatus.textContent = text;
    catalogStatus.hidden = !text;
  }

  function remember() {
    if (current === null) return;
    const values = new Map();
    for (const [name, { text }] of rawValues(current)) values.set(name, text);
    remembered.set(current.id, values);
  }

  function chooseReport(id) {
    const report = reports.find((r) => r.id === id);
    if (!report || report === current) return;
    remember();
    renderForm(report, remembered.get(report.id) || new Map());
    writeFragment(true);
  }

  function renderChoices() {
    choices.replaceChildren();
    for (const report of reports) {
      const id = `report-${report.id}`;
      const choice = document.createElement("div");
      choice.className = "choice";
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "report";
      radio.id = id;
      radio.value = report.id;
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = report.title;
      choice.append(radio, label);
      if (report.description) {
        const description = document.createElement("p");
        description.className = "hint";
        description.id = `${id}-description`;
        description.textContent = report.description;
        radio.setAttribute("aria-describedby", description.id);
        choice.append(description);
      }
      choices.append(choice);
    }
  }

  // -- the catalog ---------------------------------------------------------------------------------

  async function loadCatalog() {
    catalogStatus.className = "state pending";
    catalogStatus.textContent = "Loading the reports…";
    let problem;
    try {
      const response = await fetch("/reports", { cache: "no-store" });
      const body = await response.json().catch(() => null);
      if (response.ok && body && Array.isArray(body.reports) && body.reports.length) {
        reports = body.reports;
        renderChoices();
        form.hidden = false;
        catalogStatus.hidden = true;
        applyFragment();
        return;
      }
      const message = body && body.error ? body.error.message : "The server refused the request.";
      problem = response.ok ? "The catalog lists no report." : `${message} (HTTP ${response.status})`;
    } catch {
      problem = "Could not reach the server.";
    }
    catalogStatus.className = "state failed";
    catalogStatus.textContent = `The reports could not be loaded. ${problem} `;
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "secondary";
    retry.textContent = "Try again";
    retry.addEventListener("click", loadCatalog);
    catalogStatus.append(retry);
  }

  // -- downloads -----------------------------------------------------------------------------------

  // A download ticket from the BFF; its answer also sets the cookie the download will carry.
  // Throws an Error whose message is for people: the server's own when it refused.
  async function newTicket() {
    let response;
    try {
      response = await fetch("/exports/ticket", { method: "POST", cache: "no-store" });
    } catch {
      throw new Error("Could not reach the server. Please try again.");
    }
    const body = await response.json().catch(() => null);
    if (response.ok && body && typeof body.id === "string") return body.id;
    throw new Error(body && body.error ? body.error.message : "The server refused the request.");
  }

  function megabytes(n) {
    if (n < 1048576) return `${Math.max(1, Math.round(n / 1024))} KB`;
    return `${(n / 1048576).toFixed(n < 10485760 ? 1 : 0)} MB`;
  }

  function duration(ms) {
    const total = Math.max(0, Math.round(ms / 1000));
    const [h, m, s] = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60];
    const mmss = `${h ? String(m).padStart(2, "0") : m}:${String(s).padStart(2, "0")}`;
    return h ? `${h}:${mmss}` : mmss;
  }

  function announce(text, urgent) {
    if (urgent) {
      formAlert.textContent = text;
    } else {
      announcer.textContent = text;
    }
  }

  // One download in the list: its title, a progress bar and a line of text.
  class Download {
    constructor(report, send, expected) {
      downloadCount += 1;
      this.report = report;
      this.expected = expected; // rows the report will return, when the catalog says
      this.started = Date.now();
      this.streamingSince = null;
      this.item = document.createElement("li");
      this.item.className = "download";
      const title = document.createElement("p");
      title.className = "download-title";
      title.id = `download-${downloadCount}`;
      const name = document.createElement("strong");
      name.textContent = report.title;
      title.append(name);
      const labels = new Map(report.parameters.map((p) => [p.name, p.label || p.name]));
      const shownValues = send.map(([n, v]) => `${labels.get(n)} ${this.pretty(report, n, v)}`);
      if (shownValues.length) title.append(` · ${shownValues.join(" · ")}`);
      this.bar = document.createElement("div");
      this.bar.className = "bar";
      this.bar.setAttribute("role", "progressbar");
      this.bar.setAttribute("aria-labelledby", title.id);
      this.bar.setAttribute("aria-valuemin", "0");
      this.bar.setAttribute("aria-valuemax", "100");
      this.fill = document.createElement("div");
      this.fill.className = "bar-fill";
      this.bar.append(this.fill);
      this.line = document.createElement("p");
      this.item.append(title, this.bar, this.line);
      this.state = null;
      this.setPercent(expected ? 0 : null, "requesting");
      this.show("pending", "Requesting…");
      list.prepend(this.item);
      downloadsSection.hidden = false;
    }

    pretty(report, name, value) {
      const p = report.parameters.find((q) => q.name === name);
      if (p && (p.type === "int" || p.type === "bigint")) return BigInt(value).toLocaleString("en-US");
      return value;
    }

    show(kind, text) {
      this.line.className = `state ${kind}`;
      this.line.textContent = text;
    }

    // A percentage, or null for "not known" (an indeterminate bar: no aria-valuenow).
    setPercent(percent, valueText) {
      if (percent === null) {
        this.bar.classList.add("indeterminate");
        this.bar.removeAttribute("aria-valuenow");
        this.fill.style.width = "";
      } else {
        this.bar.classList.remove("indeterminate");
        this.bar.setAttribute("aria-valuenow", String(percent));
        this.fill.style.width = `${percent}%`;
      }
      this.bar.setAttribute("aria-valuetext", valueText);
    }

    update(status) {
      const now = Date.now();
      const elapsed = duration(now - this.started);
      const rows = typeof status.rows === "number" ? status.rows : null;
      const changed = status.state !== this.state;
      this.state = status.state;
      const title = this.report.title;
      switch (status.state) {
        case "waiting":
          this.setPercent(this.expected ? 0 : null, "preparing");
          this.show("pending", `Preparing the report: the database is running the query… ${elapsed}`);
          if (changed) announce(`${title}: preparing the report.`);
          return;
        case "streaming": {
          if (this.streamingSince === null) this.streamingSince = now;
          const size = megabytes(status.bytes);
          if (this.expected) {
            const done = Math.min(rows || 0, this.expected);
            const percent = Math.min(99, Math.floor((done * 100) / this.expected));
            const of = `${numberFormat.format(done)} of ${numberFormat.format(this.expected)} rows`;
            this.setPercent(percent, `${percent}%, ${of}`);
            let text = `${of} (${percent}%) · ${size} · ${elapsed} elapsed`;
            const streamed = now - this.streamingSince;
            if (done > 0 && streamed >= 1000) {
              const left = ((this.expected - done) * streamed) / done;
              text += ` · about ${duration(left)} left`;
            }
            this.show("pending", text);
          } else {
            const what = rows === null ? size : `${numberFormat.format(rows)} rows · ${size}`;
            this.setPercent(null, `${what} so far`);
            this.show("pending", `${what} so far · ${elapsed} elapsed`);
          }
          if (changed) announce(`${title}: downloading. Your browser's download list shows the file.`);
          return;
        }
        case "completed": {
          const count = this.expected || rows;
          const what = count === null ? "" : `${numberFormat.format(count)} rows, `;
          this.setPercent(100, "finished");
          const text = `Finished: ${what}${megabytes(status.bytes)} saved by your browser in ${elapsed}.`;
          this.show("completed", text);
          announce(`${title}: ${text}`);
          return;
        }
        case "failed": {
          const message = status.error ? status.error.message : "The server refused the request.";
          this.fail(`Not downloaded: ${message} (HTTP ${status.status})`);
          if (status.status === 400) showApiError(this.report, message);
          return;
        }
        case "aborted":
          this.fail(
            "The transfer broke off part-way, so the partial file is incomplete. Please try again.",
          );
          return;
        case "cancelled":
          this.fail("The download was cancelled before it finished.");
          return;
        default:
          this.show("pending", status.state);
      }
    }

    fail(text) {
      this.bar.hidden = true;
      this.show("failed", text);
      announce(`${this.report.title}: ${text}`, true);
    }
  }

  // The API refused a value the page accepted: its message goes under the field it names.
  function showApiError(report, message) {
    if (report !== current) return;
    const p = report.parameters.find((q) => message.startsWith(`${q.name} `));
    if (p) setError(p, message);
  }

  function track(id, download, frame) {
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
      let status;
      try {
        response = await fetch(`/exports/status/${id}`, { cache: "no-store" });
        // 404: the BFF has not seen the download request yet. Any other error answer (a BFF
        // shutting down, say) counts as lost contact, as a network error does.
        if (!response.ok && response.status !== 404) throw new Error(`HTTP ${response.status}`);
        status = response.status === 404 ? null : await response.json();
      } catch {
        failures += 1;
        if (failures > 5) {
          download.fail("Lost contact with the server; check your browser's download list.");
          finish();
          return;
        }
        setTimeout(poll, POLL_MS * failures);
        return;
      }
      if (status === null) {
        if (Date.now() - download.started > PICKUP_MS) {
          download.fail("The server did not receive the download request. Please try again.");
          finish();
          return;
        }
        setTimeout(poll, POLL_MS);
        return;
      }
      download.update(status);
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

  function expectedRows(report, send) {
    const name = report.rowCountParameter;
    if (!name) return null;
    const p = report.parameters.find((q) => q.name === name);
    const given = send.find(([n]) => n === name);
    const value = given ? given[1] : p && p.default !== undefined ? String(p.default) : null;
    return value === null ? null : Number(value);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const report = current;
    const { send, errors } = check(report);
    for (const p of report.parameters) setError(p, errors.get(p.name));
    if (errors.size) {
      const first = report.parameters.find((p) => errors.has(p.name));
      const more = errors.size > 1 ? ` (and ${errors.size - 1} more)` : "";
      announce(`Not downloaded: ${errors.get(first.name)}${more}.`, true);
      inputOf(first).focus();
      return;
    }
    formAlert.textContent = "";
    writeFragment(false);
    const download = new Download(report, send, expectedRows(report, send));
    button.disabled = true;
    let id;
    try {
      id = await newTicket();
    } catch (problem) {
      download.fail(problem.message);
      button.disabled = false;
      return;
    }
    download.item.dataset.requestId = id;
    const query = send.map(([n, v]) => `${encodeURIComponent(n)}=${encodeURIComponent(v)}`);
    const frame = document.createElement("iframe");
    frame.hidden = true;
    frame.title = "download";
    frame.src = `/exports/${encodeURIComponent(report.id)}` + (query.length ? `?${query.join("&")}` : "");
    document.body.append(frame);
    track(id, download, frame);
  });

  choices.addEventListener("change", (event) => chooseReport(event.target.value));
  // Every edit is in the link at once (the same history entry).
  fieldsBox.addEventListener("input", () => writeFragment(false));
  fieldsBox.addEventListener("change", () => writeFragment(false));
  window.addEventListener("popstate", applyFragment);
  window.addEventListener("hashchange", applyFragment);

  loadCatalog();
})();

// The sandcell playground (docs/http.md, "Playground"): one-shot runs
// through POST /v1/runs, events rendered as they come.
//
// Everything a run sends back is the sandboxed code's: it is rendered as
// text (textContent), as an <img> of a checked base64 PNG, or as HTML in
// an <iframe sandbox=""> (no scripts, an opaque origin), never through
// innerHTML.  The token lives in sessionStorage (this tab), never in a URL.
"use strict";

const $ = (id) => document.getElementById(id);
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const ANSI_RE = /\x1b\[[0-9;?]*[ -\/]*[@-~]/g;
let current = null;   // {controller, id} of the run in flight

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function plain(s) {
  return String(s).replace(ANSI_RE, "");
}

function joined(v) {
  return Array.isArray(v) ? v.join("") : String(v);
}

function setStatus(text, busy) {
  $("status").textContent = text;
  $("run").disabled = busy;
  $("interrupt").disabled = !busy;
}

// One nbformat output into the page.
function renderOutput(out) {
  const box = $("outputs");
  const kind = out.output_type;
  if (kind === "stream") {
    box.append(el("pre", "stream " + (out.name === "stderr" ? "stderr" : "stdout"), plain(joined(out.text))));
  } else if (kind === "error") {
    const tb = (out.traceback || []).map(plain).join("\n");
    box.append(el("pre", "error", tb || plain(out.ename + ": " + out.evalue)));
  } else if (kind === "display_data" || kind === "execute_result") {
    renderBundle(box, out.data || {});
  }
}

function renderBundle(box, data) {
  if (data["image/png"] !== undefined) {
    const b64 = joined(data["image/png"]).replace(/\s+/g, "");
    if (B64_RE.test(b64)) {
      const img = el("img", "figure");
      img.alt = "figure";
      img.src = "data:image/png;base64," + b64;
      box.append(img);
      return;
    }
  }
  if (data["text/html"] !== undefined) {
    // sandbox="" : no scripts, no forms, no top navigation, an opaque
    // origin; the page's CSP (default-src 'self') still applies inside.
    const frame = el("iframe", "html");
    frame.setAttribute("sandbox", "");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.srcdoc = joined(data["text/html"]);
    box.append(frame);
    return;
  }
  if (data["text/plain"] !== undefined) {
    box.append(el("pre", "plain", plain(joined(data["text/plain"]))));
  }
}

function bytesText(ev) {
  if (typeof ev.text === "string") return ev.text;
  const bin = atob(ev.b64 || "");
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
}

function kvTable(title, rows) {
  const sec = $("report");
  sec.append(el("h2", null, title));
  const t = el("table", "kv");
  for (const [k, v] of rows) {
    const tr = el("tr");
    tr.append(el("th", null, k), el("td", null, v === null || v === undefined ? "-" : String(v)));
    t.append(tr);
  }
  sec.append(t);
}

function renderReport(r) {
  $("report").replaceChildren();
  kvTable("Run", [["status", r.status], ["reason", r.reason], ["exit code", r.exit_code],
                  ["isolation", r.isolation && r.isolation.mode]]);
  kvTable("Usage", [["wall (s)", r.time && r.time.wall_sec], ["cpu (s)", r.time && r.time.cpu_sec],
                    ["peak memory (bytes)", r.memory && r.memory.peak_bytes],
                    ["stdout (bytes)", r.streams && r.streams.stdout.bytes],
                    ["stderr (bytes)", r.streams && r.streams.stderr.bytes],
                    ["output files", r.outputs && r.outputs.files.length]]);
  kvTable("Limits", Object.entries(r.limits || {}));
}

function addFile(ev) {
  const sec = $("files");
  if (!sec.firstChild) sec.append(el("h2", null, "Output files"));
  const bin = atob(ev.b64 || "");
  const blob = new Blob([Uint8Array.from(bin, (c) => c.charCodeAt(0))], { type: "application/octet-stream" });
  const a = el("a", null, ev.path + " (" + ev.size + " bytes)");
  a.href = URL.createObjectURL(blob);
  a.download = String(ev.path).split("/").pop();
  const p = el("div");
  p.append(a);
  sec.append(p);
}

function showRefusal(status, body, retry) {
  const msg = body && typeof body.message === "string" ? body.message : "HTTP " + status;
  const what = body && typeof body.status === "string" ? body.status : "refused";
  $("outputs").append(el("p", "refused", what + ": " + msg + (retry ? " (retry after " + retry + " s)" : "")));
  if (body && body.report) renderReport(body.report);
}

function api(path) {
  return new URL("../v1/" + path, location.href).toString();
}

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

function requestForm() {
  const limits = {};
  const wall = Number($("wall").value);
  if (wall > 0) limits.wall_time = wall;
  if ($("memory").value.trim()) limits.memory = $("memory").value.trim();
  const form = new FormData();
  form.append("request", new Blob([JSON.stringify({ code: $("code").value, limits: limits, cell: true })],
                                  { type: "application/json" }));
  for (const f of $("inputs").files) {
    if (!NAME_RE.test(f.name)) throw new Error("input name " + JSON.stringify(f.name) +
                                               ": letters, digits, '.', '_', '-' only");
    form.append("input:" + f.name, f, f.name);
  }
  return form;
}

// Reads the NDJSON body: live streams as they come, then the report's
// ordered cell outputs replace them.
async function readEvents(res, run) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  let report = null;
  const live = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const ev = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (ev.ev === "run") run.id = ev.id;
      else if (ev.ev === "stream") {
        const pre = el("pre", "stream live " + (ev.name === "stderr" ? "stderr" : "stdout"), plain(bytesText(ev)));
        live.push(pre);
        $("outputs").append(pre);
      } else if (ev.ev === "file") addFile(ev);
      else if (ev.ev === "report") report = ev.report;
    }
  }
  return report;
}

async function run() {
  $("outputs").replaceChildren();
  $("files").replaceChildren();
  $("report").replaceChildren();
  let form;
  try {
    form = requestForm();
  } catch (e) {
    showRefusal(0, { status: "usage-error", message: e.message });
    return;
  }
  const controller = new AbortController();
  current = { controller: controller, id: null };
  setStatus("running", true);
  try {
    const res = await fetch(api("runs"), { method: "POST", body: form, headers: authHeaders(),
                                           signal: controller.signal, credentials: "omit",
                                           cache: "no-store", referrerPolicy: "no-referrer" });
    if (!res.ok) {
      let body = null;
      try { body = await res.json(); } catch (e) { body = null; }
      showRefusal(res.status, body, res.headers.get("Retry-After"));
      setStatus("refused", false);
      return;
    }
    const report = await readEvents(res, current);
    if (!report) {
      showRefusal(0, { status: "cut", message: "the stream ended without a report" });
      setStatus("cut", false);
      return;
    }
    if (report.cell && report.cell.mode === "cell") {
      $("outputs").replaceChildren();
      for (const o of report.cell.outputs) renderOutput(o);
    }
    renderReport(report);
    setStatus("done: " + report.status, false);
  } catch (e) {
    showRefusal(0, { status: e.name === "AbortError" ? "cancelled" : "error", message: String(e.message || e) });
    setStatus(e.name === "AbortError" ? "cancelled" : "error", false);
  } finally {
    current = null;
  }
}

// Cancel by id (the report still comes, status cancelled); before the id
// is known, closing the connection is the cancel.
async function interrupt() {
  const c = current;
  if (!c) return;
  if (c.id) {
    try {
      const r = await fetch(api("runs/" + encodeURIComponent(c.id) + "/cancel"),
                            { method: "POST", headers: authHeaders(), credentials: "omit" });
      if (r.status === 202) return;
    } catch (e) { /* fall through: abort */ }
  }
  c.controller.abort();
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = sessionStorage.getItem("sandcell-token") || "";
  $("token").addEventListener("input", () => sessionStorage.setItem("sandcell-token", $("token").value));
  $("run").addEventListener("click", run);
  $("interrupt").addEventListener("click", interrupt);
  $("code").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); if (!current) run(); }
  });
});

// The sandcell playground (docs/http.md, "Playground").  Two modes:
//   session (the default, as a notebook): the page starts a session
//     (POST /v1/sessions, the chosen files as input:NAME parts) and runs
//     each cell in it (POST /v1/sessions/ID/cells), so state persists;
//     Interrupt, input() answers, Restart and Close drive that session;
//   one-shot: each Run is a POST /v1/runs, nothing kept between runs.
// Events are rendered as they come.  The page's API paths are relative
// ("../v1/..." from /playground/), so it works behind a proxy that
// forwards both; it never needs to know which server holds a session
// (the load balancer pins it: X-Sandcell-Session, docs/scaling.md).
//
// Everything a run or a cell sends back is the sandboxed code's: it is
// rendered as text (textContent), as an <img> of a checked base64 PNG, or
// as HTML in an <iframe sandbox=""> (no scripts, an opaque origin), never
// through innerHTML.  The token lives in sessionStorage (this tab), never
// in a URL.
"use strict";

const $ = (id) => document.getElementById(id);
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const SID_RE = /^[0-9a-f]{32}$/;
const ANSI_RE = /\x1b\[[0-9;?]*[ -\/]*[@-~]/g;
let mode = "session";
let current = null;   // what is in flight: {kind: "run"|"cell", controller, id, ...}
let session = null;   // the live session: {id}
let starting = false; // a POST /v1/sessions in flight

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

function setStatus(text) {
  const busy = current !== null || starting;
  $("status").textContent = text;
  $("run").disabled = busy;
  $("interrupt").disabled = current === null;
  $("restart").disabled = starting || session === null;
  $("close").disabled = starting || session === null;
  for (const r of document.querySelectorAll("input[name=mode]")) r.disabled = busy;
}

function showSession() {
  $("session").textContent = session ? "session " + session.id + " (state kept between cells)"
                                     : "no session: Run cell starts one (with the inputs and limits above)";
}

// One nbformat output into box.
function renderOutput(box, out) {
  if (!out || typeof out !== "object") return;
  const kind = out.output_type;
  if (kind === "stream") {
    box.append(el("pre", "stream " + (out.name === "stderr" ? "stderr" : "stdout"), plain(joined(out.text))));
  } else if (kind === "error") {
    const tb = (Array.isArray(out.traceback) ? out.traceback : []).map(plain).join("\n");
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

function shown(v) {
  if (v === null || v === undefined) return "-";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function kvTable(title, rows) {
  const sec = $("report");
  sec.append(el("h2", null, title));
  const t = el("table", "kv");
  for (const [k, v] of rows) {
    const tr = el("tr");
    tr.append(el("th", null, k), el("td", null, shown(v)));
    t.append(tr);
  }
  sec.append(t);
}

// A run's report, or a session's end report (with its `session` keys).
function renderReport(r) {
  $("report").replaceChildren();
  if (!r || typeof r !== "object") return;
  const s = r.session && typeof r.session === "object" ? r.session : null;
  kvTable(s ? "Session" : "Run", [["status", r.status], ["reason", r.reason], ["exit code", r.exit_code],
                                  ["isolation", r.isolation && r.isolation.mode]]
          .concat(s ? [["ended by", s.ended_by], ["cells", s.cells], ["cells by status", s.statuses]] : []));
  kvTable("Usage", [["wall (s)", r.time && r.time.wall_sec], ["cpu (s)", r.time && r.time.cpu_sec],
                    ["peak memory (bytes)", r.memory && r.memory.peak_bytes],
                    ["stdout (bytes)", r.streams && r.streams.stdout && r.streams.stdout.bytes],
                    ["stderr (bytes)", r.streams && r.streams.stderr && r.streams.stderr.bytes],
                    ["output files", r.outputs && r.outputs.files && r.outputs.files.length]]);
  kvTable("Limits", Object.entries(r.limits || {})
          .concat(s ? Object.entries(s.limits || {}) : []));
}

function addFile(ev) {
  const sec = $("files");
  if (!sec.firstChild) sec.append(el("h2", null, "Output files"));
  const p = el("div");
  if (typeof ev.b64 !== "string" || !B64_RE.test(ev.b64)) {
    p.append(el("span", "refused", String(ev.path) + ": " + String(ev.error || "not sent")));
  } else {
    const bin = atob(ev.b64);
    const blob = new Blob([Uint8Array.from(bin, (c) => c.charCodeAt(0))], { type: "application/octet-stream" });
    const a = el("a", null, ev.path + " (" + ev.size + " bytes)");
    a.href = URL.createObjectURL(blob);
    a.download = String(ev.path).split("/").pop();
    p.append(a);
  }
  sec.append(p);
}

function showRefusal(box, status, body, retry) {
  const msg = body && typeof body.message === "string" ? body.message : "HTTP " + status;
  const what = body && typeof body.status === "string" ? body.status : "refused";
  box.append(el("p", "refused", what + ": " + msg + (retry ? " (retry after " + retry + " s)" : "")));
  if (body && body.report) renderReport(body.report);
}

function api(path) {
  return new URL("../v1/" + path, location.href).toString();
}

function authHeaders(extra) {
  const token = $("token").value.trim();
  return Object.assign(token ? { Authorization: "Bearer " + token } : {}, extra || {});
}

// fetch with what every call of the page sets: no cookies, no cache, no referrer.
function call(path, init) {
  return fetch(api(path), Object.assign({ credentials: "omit", cache: "no-store",
                                          referrerPolicy: "no-referrer" }, init));
}

function postJSON(path, obj) {
  return call(path, { method: "POST", body: JSON.stringify(obj),
                      headers: authHeaders({ "Content-Type": "application/json" }) });
}

async function bodyOf(res) {
  try { return await res.json(); } catch (e) { return null; }
}

function limitsOf(wallKey) {
  const limits = {};
  const wall = Number($("wall").value);
  if (wall > 0) limits[wallKey] = wall;
  if ($("memory").value.trim()) limits.memory = $("memory").value.trim();
  return limits;
}

// The request part, then each chosen file as input:NAME.
function requestForm(request) {
  const form = new FormData();
  form.append("request", new Blob([JSON.stringify(request)], { type: "application/json" }));
  for (const f of $("inputs").files) {
    if (!NAME_RE.test(f.name)) throw new Error("input name " + JSON.stringify(f.name) +
                                               ": letters, digits, '.', '_', '-' only");
    form.append("input:" + f.name, f, f.name);
  }
  return form;
}

// Calls each(event) for every NDJSON line of the body, as it comes.
async function readLines(res, each) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const ev = JSON.parse(line);
      if (ev && typeof ev === "object") each(ev);
    }
  }
}

// ---- one-shot runs ----------------------------------------------------

async function run() {
  $("outputs").replaceChildren();
  $("files").replaceChildren();
  $("report").replaceChildren();
  let form;
  try {
    form = requestForm({ code: $("code").value, limits: limitsOf("wall_time"), cell: true });
  } catch (e) {
    showRefusal($("outputs"), 0, { status: "usage-error", message: e.message });
    return;
  }
  current = { kind: "run", controller: new AbortController(), id: null };
  setStatus("running");
  try {
    const res = await call("runs", { method: "POST", body: form, headers: authHeaders(),
                                     signal: current.controller.signal });
    if (!res.ok) {
      showRefusal($("outputs"), res.status, await bodyOf(res), res.headers.get("Retry-After"));
      current = null;
      setStatus("refused");
      return;
    }
    let report = null;
    const r = current;
    await readLines(res, (ev) => {
      if (ev.ev === "run") r.id = ev.id;
      else if (ev.ev === "stream") {
        $("outputs").append(el("pre", "stream live " + (ev.name === "stderr" ? "stderr" : "stdout"),
                               plain(bytesText(ev))));
      } else if (ev.ev === "file") addFile(ev);
      else if (ev.ev === "report") report = ev.report;
    });
    current = null;
    if (!report) {
      showRefusal($("outputs"), 0, { status: "cut", message: "the stream ended without a report" });
      setStatus("cut");
      return;
    }
    // The live streams are replaced by the report's ordered cell outputs.
    if (report.cell && report.cell.mode === "cell") {
      $("outputs").replaceChildren();
      for (const o of report.cell.outputs) renderOutput($("outputs"), o);
    }
    renderReport(report);
    setStatus("done: " + report.status);
  } catch (e) {
    current = null;
    const what = e.name === "AbortError" ? "cancelled" : "error";
    showRefusal($("outputs"), 0, { status: what, message: String(e.message || e) });
    setStatus(what);
  }
}

// Cancel by id (the report still comes, status cancelled); before the id
// is known, closing the connection is the cancel.
async function cancelRun(c) {
  if (c.id) {
    try {
      const r = await call("runs/" + encodeURIComponent(c.id) + "/cancel",
                           { method: "POST", headers: authHeaders() });
      if (r.status === 202) return;
    } catch (e) { /* fall through: abort */ }
  }
  c.controller.abort();
}

// ---- sessions ---------------------------------------------------------

// The session is over (closed, or ended on its own: a limit, idle, the
// server gone): say why, and show its end report.
function sessionOver(s, body, how) {
  if (session === s) session = null;
  showSession();
  const parts = [how];
  const r = body && body.report && typeof body.report === "object" ? body.report : null;
  // The report's status (a 410's own is "session-ended").
  if (r && typeof r.status === "string") parts.push(r.status);
  else if (body && typeof body.status === "string") parts.push(body.status);
  const reason = body && typeof body.reason === "string" ? body.reason
               : r && typeof r.reason === "string" ? r.reason
               : body && typeof body.message === "string" ? body.message : "";
  if (reason) parts.push(reason);
  if (r && r.session && typeof r.session.ended_by === "string") parts.push("ended by " + r.session.ended_by);
  $("outputs").append(el("p", "ended", parts.join(": ")));
  if (r) renderReport(r);
}

async function startSession() {
  let form;
  try {
    form = requestForm({ limits: limitsOf("cell_wall_time") });
  } catch (e) {
    showRefusal($("outputs"), 0, { status: "usage-error", message: e.message });
    return false;
  }
  starting = true;
  setStatus("starting a session");
  try {
    const res = await call("sessions", { method: "POST", body: form, headers: authHeaders() });
    const body = await bodyOf(res);
    if (res.status !== 201 || !body || typeof body.session !== "string" || !SID_RE.test(body.session)) {
      showRefusal($("outputs"), res.status, body, res.headers.get("Retry-After"));
      return false;
    }
    // The last session's end report (a restart) stays shown.
    session = { id: body.session };
    showSession();
    return true;
  } catch (e) {
    showRefusal($("outputs"), 0, { status: "error", message: String(e.message || e) });
    return false;
  } finally {
    starting = false;
    setStatus(session ? "session ready" : "refused");
  }
}

// A cell's block: its prompt ([*] while it runs, [N] after), its source,
// its outputs as they come, a line for how it ended.
function cellBlock(code) {
  const block = el("div", "cell");
  const head = el("div", "cell-head");
  const prompt = el("span", "prompt", "[*]");
  head.append(prompt, el("pre", "source", code));
  const outs = el("div", "cell-outputs");
  const foot = el("div", "cell-foot");
  block.append(head, outs, foot);
  $("outputs").append(block);
  return { block: block, prompt: prompt, outs: outs, foot: foot, input: null };
}

// input() in the cell: a box to answer it; the answer is sent with the
// cell's id, and the box becomes the line the user typed (masked for getpass).
function askInput(c, s, ev) {
  const form = el("form", "input-box");
  const label = el("label", null, plain(String(ev.prompt || "")));
  const box = el("input");
  box.type = ev.password === true ? "password" : "text";
  box.autocomplete = "off";
  box.className = "input-answer";
  const send = el("button", null, "Send");
  send.type = "submit";
  label.append(box);
  form.append(label, send);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = box.value;
    send.disabled = true;
    box.disabled = true;
    try {
      const r = await postJSON("sessions/" + s.id + "/input", { id: String(ev.id), value: value });
      if (r.status !== 202) {
        showRefusal(c.outs, r.status, await bodyOf(r));
        send.disabled = false;
        box.disabled = false;
        return;
      }
      form.replaceWith(el("pre", "stream stdin", plain(String(ev.prompt || "")) +
                          (ev.password === true ? "********" : value)));
      if (c.input === form) c.input = null;
    } catch (err) {
      showRefusal(c.outs, 0, { status: "error", message: String(err.message || err) });
      send.disabled = false;
      box.disabled = false;
    }
  });
  c.outs.append(form);
  c.input = form;
  box.focus();
}

function cellEvent(c, s, ev) {
  if (ev.ev === "output") {
    renderOutput(c.outs, ev.output);
  } else if (ev.ev === "input_request") {
    askInput(c, s, ev);
  } else if (ev.ev === "dataset_request") {
    // The page has no way to hand a dataset to a running cell: refused,
    // so the cell gets its KeyError instead of waiting.
    c.outs.append(el("p", "note", "dataset " + JSON.stringify(String(ev.name)) +
                     " asked for: the playground has none to give, refused"));
    postJSON("sessions/" + s.id + "/datasets",
             { name: String(ev.name), refused: "the playground does not upload datasets" })
      .catch(() => {});
  } else if (ev.ev === "file") {
    addFile(ev);
  } else if (ev.ev === "refused") {
    c.outs.append(el("p", "note", "refused: " + plain(String(ev.reason))));
  } else if (ev.ev === "done") {
    if (c.input) { c.input.remove(); c.input = null; }
    const n = ev.execution_count;
    c.prompt.textContent = Number.isInteger(n) ? "[" + n + "]" : "[x]";
    const u = ev.usage && typeof ev.usage === "object" ? ev.usage : {};
    const sec = (v) => typeof v === "number" ? v.toFixed(3) : "-";
    c.foot.textContent = String(ev.status) + " · wall " + sec(u.wall_sec) + " s · cpu " + sec(u.cpu_sec) + " s";
    c.block.classList.add("cell-" + String(ev.status).replace(/[^a-z]/g, ""));
    c.status = String(ev.status);
  } else if (ev.ev === "end") {
    sessionOver(s, ev, "session ended");
  }
}

async function runCell() {
  if (session === null && !(await startSession())) return;
  const s = session;
  const c = cellBlock($("code").value);
  current = { kind: "cell", controller: new AbortController(), session: s, cell: c, closing: false };
  const me = current;
  setStatus("running");
  try {
    const res = await call("sessions/" + s.id + "/cells",
                           { method: "POST", body: JSON.stringify({ code: $("code").value }),
                             headers: authHeaders({ "Content-Type": "application/json" }),
                             signal: me.controller.signal });
    if (!res.ok) {
      const body = await bodyOf(res);
      c.prompt.textContent = "[ ]";
      if (res.status === 410 || res.status === 404) {
        // Ended on its own (410, with the end report), or no longer held
        // by any server this page reaches (404: its server went away).
        sessionOver(s, body, res.status === 410 ? "session ended" : "session lost");
      } else {
        showRefusal(c.outs, res.status, body, res.headers.get("Retry-After"));
      }
      return;
    }
    await readLines(res, (ev) => cellEvent(c, s, ev));
    if (!c.status) c.outs.append(el("p", "refused", "cut: the cell's stream ended without its done"));
  } catch (e) {
    if (!me.closing) c.outs.append(el("p", "refused", "error: " + String(e.message || e)));
    else c.foot.textContent = "the session was closed while this cell ran";
  } finally {
    if (current === me) current = null;
    setStatus(c.status ? "done: " + c.status : session ? "session ready" : "session ended");
  }
}

async function interruptCell(c) {
  try {
    const r = await call("sessions/" + c.session.id + "/interrupt",
                         { method: "POST", headers: authHeaders() });
    if (r.status !== 202) showRefusal(c.cell.outs, r.status, await bodyOf(r));
  } catch (e) {
    showRefusal(c.cell.outs, 0, { status: "error", message: String(e.message || e) });
  }
}

// DELETE: the session's end report.  A cell still running is left to the
// server (killed 5 s after the close if it does not end); its stream is
// closed here, its last events dropped.
async function closeSession(how) {
  const s = session;
  if (s === null) return;
  if (current && current.kind === "cell" && current.session === s) {
    current.closing = true;
    current.controller.abort();
  }
  setStatus("closing the session");
  try {
    const r = await call("sessions/" + s.id, { method: "DELETE", headers: authHeaders() });
    const body = await bodyOf(r);
    if (r.status === 200 || r.status === 410) sessionOver(s, body, how);
    else if (r.status === 404) sessionOver(s, body, "session lost");
    else showRefusal($("outputs"), r.status, body);
  } catch (e) {
    showRefusal($("outputs"), 0, { status: "error", message: String(e.message || e) });
  }
  setStatus(session ? "session ready" : "session closed");
}

async function restart() {
  await closeSession("session restarted");
  if (session === null) await startSession();
}

// ---- the page ---------------------------------------------------------

function runClicked() {
  if (current || starting) return;
  if (mode === "session") runCell(); else run();
}

function interrupt() {
  const c = current;
  if (!c) return;
  if (c.kind === "cell") interruptCell(c); else cancelRun(c);
}

async function setMode(m) {
  if (m === mode) return;
  // Leaving session mode closes the session (its end report stays shown):
  // nothing is left running on a server that the page no longer shows.
  if (mode === "session") await closeSession("session closed");
  mode = m;
  document.body.dataset.mode = m;
  $("run").textContent = m === "session" ? "Run cell" : "Run";
  $("wall-label").textContent = m === "session" ? "Wall time per cell (s)" : "Wall time (s)";
  $("outputs").replaceChildren();
  $("files").replaceChildren();
  setStatus("idle");
}

document.addEventListener("DOMContentLoaded", () => {
  document.body.dataset.mode = mode;
  $("token").value = sessionStorage.getItem("sandcell-token") || "";
  $("token").addEventListener("input", () => sessionStorage.setItem("sandcell-token", $("token").value));
  $("run").addEventListener("click", runClicked);
  $("interrupt").addEventListener("click", interrupt);
  $("restart").addEventListener("click", () => { if (!starting) restart(); });
  $("close").addEventListener("click", () => { if (!starting) closeSession("session closed"); });
  for (const r of document.querySelectorAll("input[name=mode]"))
    r.addEventListener("change", () => { if (r.checked) setMode(r.value); });
  $("code").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runClicked(); }
  });
  // Leaving the page closes its session rather than leaving it to its
  // idle timeout (keepalive: the request outlives the page).
  window.addEventListener("pagehide", () => {
    if (session) fetch(api("sessions/" + session.id), { method: "DELETE", headers: authHeaders(),
                                                        keepalive: true, credentials: "omit" });
  });
  showSession();
  setStatus("idle");
});

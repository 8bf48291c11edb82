// The page served at /: paste comments or upload a CSV, tag them through POST /v1/classify,
// show themes with their evidence, a summary chart (inline SVG) and a tagged CSV to download.
// Plain DOM, no libraries, nothing fetched from anywhere but this server. All user text goes
// into the page through textContent, never as HTML.
"use strict";

const MAX_ITEMS = 256; // per request: the API's limit
const SHOWN = 500; // comments listed on the page; the download has them all
const COLOURS = { negative: "#D55E00", positive: "#0072B2", none: "#999999" };
const WORDS = { negative: "complaint", positive: "praise" };

const state = { key: sessionStorage.getItem("feedback-nlp-key") || "", themes: [], maxBody: 2 * 1024 * 1024, csv: null, blobUrl: null };
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- server

function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.key) h["X-API-Key"] = state.key;
  return h;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (e) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

function askForKey(message) {
  $("key-box").hidden = false;
  $("api-key").focus();
  setStatus(message || "This server needs an API key: paste it above.", true);
}

async function loadModel() {
  let response;
  try {
    response = await fetch("/v1/model", { headers: headers() });
  } catch (e) {
    $("model").textContent = "Cannot reach the server.";
    return;
  }
  if (response.status === 401) {
    $("model").textContent = "Model: needs an API key.";
    askForKey(state.key ? "That key was not accepted." : null);
    return;
  }
  if (response.status === 503) {
    $("model").textContent = "The model is loading…";
    setTimeout(loadModel, 2000);
    return;
  }
  if (!response.ok) {
    $("model").textContent = `Model: ${await errorMessage(response)}`;
    return;
  }
  const info = await response.json();
  state.themes = ((info.taxonomy && info.taxonomy.themes) || []).map((t) => ({ id: t.id, name: t.name || t.id, polar: !!t.polar }));
  if (info.limits && info.limits.max_body_bytes) state.maxBody = info.limits.max_body_bytes;
  $("model").textContent = `Model ${info.name} ${info.version} · themes: ${state.themes.map((t) => t.name).join(", ")}`;
  if (state.key) $("key-box").hidden = false;
  setStatus("");
}

async function classify(texts, onProgress) {
  const results = [];
  const budget = Math.floor(state.maxBody * 0.8); // leave room for JSON framing
  let start = 0;
  while (start < texts.length) {
    const items = [];
    let bytes = 20;
    while (start + items.length < texts.length && items.length < MAX_ITEMS) {
      const item = { id: start + items.length, text: texts[start + items.length] };
      const size = new Blob([JSON.stringify(item)]).size + 1;
      if (items.length && bytes + size > budget) break;
      items.push(item);
      bytes += size;
    }
    const answer = await post(items);
    for (const result of answer.results) results.push(result);
    start += items.length;
    onProgress(start, texts.length);
  }
  return results;
}

async function post(items, attempt = 0) {
  const response = await fetch("/v1/classify", { method: "POST", headers: headers(), body: JSON.stringify({ items }) });
  if (response.ok) return response.json();
  if ((response.status === 429 || response.status === 503) && attempt < 5) {
    const wait = Number(response.headers.get("Retry-After") || "1");
    await new Promise((resolve) => setTimeout(resolve, Math.min(30, Math.max(1, wait)) * 1000));
    return post(items, attempt + 1);
  }
  const error = new Error(await errorMessage(response));
  error.status = response.status;
  throw error;
}

// ---------------------------------------------------------------- CSV

function sniffDelimiter(text) {
  const firstLine = text.split(/\r?\n/, 1)[0];
  let best = ",", bestCount = 0;
  for (const d of [",", ";", "\t"]) {
    const count = firstLine.split(d).length - 1;
    if (count > bestCount) { best = d; bestCount = count; }
  }
  return best;
}

function parseCSV(text) {
  // RFC 4180: quoted fields may hold delimiters, doubled quotes and line breaks.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const delimiter = sniffDelimiter(text);
  const rows = [];
  let row = [], field = "", quoted = false, i = 0;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false; i += 1; continue;
      }
      field += c; i += 1; continue;
    }
    if (c === '"' && field === "") { quoted = true; i += 1; continue; }
    if (c === delimiter) { row.push(field); field = ""; i += 1; continue; }
    if (c === "\r" || c === "\n") {
      row.push(field); field = "";
      if (!(row.length === 1 && row[0] === "")) rows.push(row);
      row = [];
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    field += c; i += 1;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows;
}

function toCSV(columns, rows) {
  const cell = (v) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [columns, ...rows.map((r) => columns.map((c) => r[c]))].map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
}

function guessTextColumn(header, records) {
  const names = ["text", "comment", "comments", "feedback", "body", "description", "message"];
  for (const name of names) {
    const found = header.find((h) => h.trim().toLowerCase() === name);
    if (found !== undefined) return found;
  }
  let best = header[0], bestLength = -1;
  for (const h of header) {
    const sample = records.slice(0, 200);
    const length = sample.reduce((sum, r) => sum + (r[h] || "").length, 0) / Math.max(1, sample.length);
    if (length > bestLength) { best = h; bestLength = length; }
  }
  return best;
}

async function readCSVFile(file) {
  const rows = parseCSV(await file.text());
  if (!rows.length) throw new Error("The file is empty.");
  const header = rows[0].map((h, i) => h.trim() || `column_${i + 1}`);
  const records = rows.slice(1).map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] === undefined ? "" : r[i]])));
  return { name: file.name, header, records };
}

// ---------------------------------------------------------------- display

function themeName(id) {
  const theme = state.themes.find((t) => t.id === id);
  return theme ? theme.name : id.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

function hitLabel(hit) {
  // A theme that is always one way (e.g. "Not solved") has no polarity score and needs no suffix.
  const polar = hit.polarity_score !== null && hit.polarity_score !== undefined;
  return polar && WORDS[hit.polarity] ? `${themeName(hit.theme)}: ${WORDS[hit.polarity]}` : themeName(hit.theme);
}

function setStatus(message, isError = false) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "";
}

function evidenceSpans(text, hits) {
  const spans = [];
  for (const hit of hits) {
    const ev = hit.evidence;
    if (!ev || !ev.text) continue;
    let start = ev.start, end = ev.end;
    // The offsets index the comment as sent; the evidence text is normalised (line breaks and
    // runs of spaces joined), so compare the two with whitespace collapsed. Only offsets that
    // do not fit this text (another normalisation) fall back to searching for the sentence.
    const squash = (s) => s.replace(/\s+/g, " ").trim();
    const fits = Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= text.length;
    if (!fits || squash(text.slice(start, end)) !== squash(ev.text)) {
      start = text.indexOf(ev.text);
      end = start + ev.text.length;
    }
    if (start < 0) continue;
    const same = spans.find((s) => s.start === start && s.end === end);
    if (same) { same.hits.push(hit); continue; }
    if (spans.some((s) => start < s.end && end > s.start)) continue; // overlaps another: keep the first
    spans.push({ start, end, hits: [hit] });
  }
  return spans.sort((a, b) => a.start - b.start);
}

function renderComment(text, result) {
  const li = document.createElement("li");
  const quote = document.createElement("div");
  quote.className = "comment";
  let at = 0;
  for (const span of evidenceSpans(text, result.themes)) {
    quote.append(document.createTextNode(text.slice(at, span.start)));
    const mark = document.createElement("mark");
    const polarities = new Set(span.hits.map((h) => h.polarity));
    if (polarities.size === 1) mark.className = [...polarities][0] || "";
    mark.title = span.hits.map(hitLabel).join(", ");
    mark.textContent = text.slice(span.start, span.end);
    quote.append(mark);
    at = span.end;
  }
  quote.append(document.createTextNode(text.slice(at)));
  if (!text.trim()) { quote.textContent = "(empty)"; quote.classList.add("muted"); }
  const chips = document.createElement("div");
  chips.className = "chips";
  for (const hit of result.themes) {
    const chip = document.createElement("span");
    chip.className = `chip ${hit.polarity || "none"}`;
    chip.dataset.theme = hit.theme;
    chip.textContent = `${hit.polarity === "negative" ? "▼" : hit.polarity === "positive" ? "▲" : "●"} ${hitLabel(hit)} ${Math.round(hit.score * 100)}%`;
    chips.append(chip);
  }
  if (!result.themes.length) {
    const chip = document.createElement("span");
    chip.className = "chip empty";
    chip.textContent = result.language_supported === false ? "not scored: language not covered" : "no theme";
    chips.append(chip);
  }
  if (result.language) {
    const chip = document.createElement("span");
    chip.className = "chip language";
    chip.textContent = result.language;
    chip.title = "the comment's language";
    chips.append(chip);
  }
  li.dataset.language = result.language || "";
  li.append(quote, chips);
  return li;
}

// The SVG namespace, taken from a parsed element so that this file names no URL at all.
const SVG_NS = (() => { const div = document.createElement("div"); div.innerHTML = "<svg></svg>"; return div.firstChild.namespaceURI; })();

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function renderChart(results) {
  // Diverging bars per theme: complaints to the left, praise to the right, as % of comments.
  const ids = state.themes.length ? state.themes.map((t) => t.id) : [...new Set(results.flatMap((r) => r.themes.map((h) => h.theme)))];
  const n = results.length || 1;
  const counts = Object.fromEntries(ids.map((id) => [id, { negative: 0, positive: 0, none: 0 }]));
  for (const r of results) for (const h of r.themes) {
    if (!counts[h.theme]) counts[h.theme] = { negative: 0, positive: 0, none: 0 };
    counts[h.theme][h.polarity === "negative" || h.polarity === "positive" ? h.polarity : "none"] += 1;
  }
  const rows = Object.keys(counts);
  const width = 760, left = 160, right = 20, rowH = 30, top = 34, bottom = 44;
  const height = top + rows.length * rowH + bottom;
  const mid = left + (width - left - right) / 2;
  const half = (width - left - right) / 2 - 85; // room for the count labels
  const maxShare = Math.max(0.01, ...rows.map((id) => Math.max(counts[id].negative, counts[id].positive + counts[id].none) / n));
  const scale = (share) => (share / maxShare) * half;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": "chart-title" });
  root.append(svg("title", { id: "chart-title" }, `Themes in ${results.length} comments: complaints left, praise right`));
  root.append(svg("text", { x: mid - 8, y: 18, "text-anchor": "end", fill: COLOURS.negative }, "◀ complaint"));
  root.append(svg("text", { x: mid + 8, y: 18, fill: COLOURS.positive }, "praise ▶"));
  rows.forEach((id, i) => {
    const y = top + i * rowH;
    const c = counts[id];
    const g = svg("g", { class: "bar", "data-theme": id });
    g.append(svg("text", { x: left - 8, y: y + rowH / 2 + 4, "text-anchor": "end" }, themeName(id)));
    const neg = scale(c.negative / n), pos = scale(c.positive / n), other = scale(c.none / n);
    g.append(svg("rect", { x: mid - neg, y: y + 4, width: neg, height: rowH - 8, fill: COLOURS.negative }));
    g.append(svg("rect", { x: mid, y: y + 4, width: pos, height: rowH - 8, fill: COLOURS.positive }));
    if (c.none) g.append(svg("rect", { x: mid + pos, y: y + 4, width: other, height: rowH - 8, fill: COLOURS.none }));
    if (c.negative) g.append(svg("text", { x: mid - neg - 4, y: y + rowH / 2 + 4, "text-anchor": "end" }, `${c.negative} (${Math.round((100 * c.negative) / n)}%)`));
    if (c.positive + c.none) g.append(svg("text", { x: mid + pos + other + 4, y: y + rowH / 2 + 4 }, `${c.positive + c.none} (${Math.round((100 * (c.positive + c.none)) / n)}%)`));
    root.append(g);
  });
  const base = top + rows.length * rowH;
  root.append(svg("line", { x1: mid, x2: mid, y1: top - 4, y2: base + 4, stroke: "#333" }));
  root.append(svg("text", { x: mid, y: base + 30, "text-anchor": "middle", fill: "#555" }, `comments with the theme (share of all ${results.length})`));
  $("chart").replaceChildren(root);
}

function offerDownload(columns, records, results, fileName) {
  const ids = state.themes.length ? state.themes.map((t) => t.id) : Object.keys((results[0] && results[0].scores) || {});
  const rows = records.map((record, i) => {
    const r = results[i];
    const row = { ...record, themes: r.themes.map((h) => (h.polarity ? `${h.theme}:${h.polarity}` : h.theme)).join(";") };
    for (const id of ids) row[`score_${id}`] = r.language_supported === false ? "" : (r.scores[id] !== undefined ? r.scores[id] : 0);
    row.language = r.language || "";
    row.language_supported = r.language_supported === false ? "False" : "True";
    return row;
  });
  const added = ["themes", ...ids.map((id) => `score_${id}`), "language", "language_supported"];
  const header = [...columns.filter((c) => !added.includes(c)), ...added];
  if (state.blobUrl) URL.revokeObjectURL(state.blobUrl);
  state.blobUrl = URL.createObjectURL(new Blob([toCSV(header, rows)], { type: "text/csv;charset=utf-8" }));
  const link = $("download");
  link.href = state.blobUrl;
  link.download = fileName;
}

// ---------------------------------------------------------------- the form

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function collect() {
  if (mode() === "paste") {
    const texts = $("comments").value.split(/\r?\n/).map((t) => t.trim()).filter((t) => t);
    if (!texts.length) throw new Error("Paste at least one comment (one per line).");
    return { columns: ["text"], records: texts.map((text) => ({ text })), texts, fileName: "comments.tagged.csv" };
  }
  if (!state.csv) throw new Error("Choose a CSV file first.");
  const column = $("text-column").value;
  const { header, records, name } = state.csv;
  if (!records.length) throw new Error("The file has column names but no rows.");
  const stem = name.replace(/\.[^.]*$/, "") || "comments";
  return { columns: header, records, texts: records.map((r) => r[column] || ""), fileName: `${stem}.tagged.csv` };
}

async function submit(event) {
  event.preventDefault();
  let input;
  try {
    input = collect();
  } catch (e) {
    setStatus(e.message, true);
    return;
  }
  $("submit").disabled = true;
  setStatus(`Tagging ${input.texts.length} comment(s)…`);
  try {
    const results = await classify(input.texts, (done, total) => setStatus(`Tagged ${done} of ${total}…`));
    const list = $("list");
    list.replaceChildren(...input.texts.slice(0, SHOWN).map((text, i) => renderComment(text, results[i])));
    $("more").hidden = input.texts.length <= SHOWN;
    $("more").textContent = `Showing the first ${SHOWN} of ${input.texts.length} comments; the download has them all.`;
    const tagged = results.filter((r) => r.themes.length).length;
    $("summary-text").textContent = `${input.texts.length} comment(s), ${tagged} with at least one theme.`;
    renderLanguages(results);
    renderChart(results);
    offerDownload(input.columns, input.records, results, input.fileName);
    $("results").hidden = false;
    setStatus(`Done: ${input.texts.length} comment(s) tagged.`);
  } catch (e) {
    if (e.status === 401) askForKey(state.key ? `The key was refused: ${e.message}` : null);
    else setStatus(`Could not tag the comments: ${e.message}`, true);
  } finally {
    $("submit").disabled = false;
  }
}

async function chooseFile() {
  const file = $("csv-file").files[0];
  const select = $("text-column");
  state.csv = null;
  select.replaceChildren();
  select.disabled = true;
  $("csv-info").textContent = "";
  if (!file) return;
  try {
    state.csv = await readCSVFile(file);
  } catch (e) {
    setStatus(`Cannot read ${file.name}: ${e.message}`, true);
    return;
  }
  const guess = guessTextColumn(state.csv.header, state.csv.records);
  for (const h of state.csv.header) {
    const option = document.createElement("option");
    option.value = h;
    option.textContent = h;
    option.selected = h === guess;
    select.append(option);
  }
  select.disabled = false;
  $("csv-info").textContent = `${state.csv.records.length} row(s); columns: ${state.csv.header.join(", ")}`;
  setStatus("");
}

function renderLanguages(results) {
  // Share per language, and a filter for the list below.
  const counts = {};
  for (const r of results) counts[r.language || "?"] = (counts[r.language || "?"] || 0) + 1;
  const langs = Object.keys(counts).sort((a, b) => counts[b] - counts[a]);
  const unsupported = results.filter((r) => r.language_supported === false).length;
  $("languages-text").textContent = "Languages: " + langs.map((l) => `${l} ${Math.round((100 * counts[l]) / results.length)}% (${counts[l]})`).join(", ")
    + (unsupported ? `; ${unsupported} comment(s) in a language the model does not cover were not scored.` : ".");
  const select = $("language-filter");
  const all = document.createElement("option");
  all.value = "";
  all.textContent = "all languages";
  select.replaceChildren(all, ...langs.map((l) => { const o = document.createElement("option"); o.value = l; o.textContent = `${l} (${counts[l]})`; return o; }));
  $("language-box").hidden = langs.length < 2;
  filterLanguage();
}

function filterLanguage() {
  const chosen = $("language-filter").value;
  for (const li of $("list").children) li.hidden = Boolean(chosen) && li.dataset.language !== chosen;
}

function switchMode() {
  $("paste-pane").hidden = mode() !== "paste";
  $("csv-pane").hidden = mode() !== "csv";
  $("results").hidden = true; // the results shown belong to the other input
  setStatus("");
}

function useKey() {
  state.key = $("api-key").value.trim();
  sessionStorage.setItem("feedback-nlp-key", state.key);
  setStatus("");
  loadModel();
}

$("form").addEventListener("submit", submit);
$("language-filter").addEventListener("change", filterLanguage);
$("csv-file").addEventListener("change", chooseFile);
$("use-key").addEventListener("click", useKey);
$("api-key").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); useKey(); } });
for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", switchMode);
$("api-key").value = state.key;
switchMode();
loadModel();

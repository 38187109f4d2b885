// vidmatte's page: plain JavaScript, a 2D canvas for painting, no build step. Every action is one HTTP call to the
// server (src/vidmatte/web/app.py); the job id in the address (#id) lets a reload pick the job up again.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN = new URLSearchParams(location.search).get("token");
const LABEL = { none: 0, bg: 1, unknown: 2, fg: 3 };
const GREY_OF_LABEL = [0, 0, 128, 255];  // what a keyframe image holds: unpainted counts as background
const COLOURS = [null, [40, 90, 255, 90], [255, 200, 0, 140], [0, 220, 90, 120]];
const UNDO_DEPTH = 30;

const state = {
  config: null, job: null, frame: 0, tool: "fg", labels: null, drafts: new Map(), undo: [],
  guideFrames: new Set(), playing: null, poll: null, runStamp: Date.now(),
};

// --- talking to the server --------------------------------------------------------------------------------
function url(path) {
  return TOKEN ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN) : path;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (TOKEN) headers["X-Vidmatte-Token"] = TOKEN;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const isJson = (response.headers.get("content-type") || "").includes("json");
  if (!response.ok) {
    const body = isJson ? await response.json() : { error: response.statusText };
    throw new Error(body.error || `HTTP ${response.status}`);
  }
  return isJson ? response.json() : response.blob();
}

function say(text, isError = true) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
  box.className = isError ? "error" : "note";
}

async function attempt(action) {
  try {
    say("");
    return await action();
  } catch (error) {
    say(error.message);
  }
}

// --- upload -----------------------------------------------------------------------------------------------
async function upload(file) {
  state.config = state.config || await state.configReady;  // a file chosen before the server's limits arrived
  if (file.size > state.config.max_upload) {
    say(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; this server takes at most ${state.config.max_upload_text}.`);
    return;
  }
  const request = new XMLHttpRequest();
  request.open("POST", "api/jobs");
  request.setRequestHeader("X-Filename", encodeURIComponent(file.name));
  if (TOKEN) request.setRequestHeader("X-Vidmatte-Token", TOKEN);
  request.upload.onprogress = (e) => {
    if (e.lengthComputable) $("upload-status").textContent = `uploading ${Math.round(100 * e.loaded / e.total)}%`;
  };
  request.upload.onload = () => { $("upload-status").textContent = "reading the video..."; };
  request.onload = () => {
    $("upload-status").textContent = "";
    let body = {};
    try { body = JSON.parse(request.responseText); } catch (e) { body = { error: request.statusText }; }
    if (request.status >= 400) { say(`${file.name}: ${body.error}`); return; }
    if (location.hash === "#" + body.id) openJob(body.id); else location.hash = body.id;
  };
  request.onerror = () => { $("upload-status").textContent = ""; say("the upload failed (connection lost)"); };
  say("");
  request.send(file);
}

// --- jobs list ----------------------------------------------------------------------------------------------
async function refreshJobs() {
  const { jobs } = await api("api/jobs");
  const list = $("jobs");
  list.replaceChildren(...jobs.map((job) => {
    const item = document.createElement("li");
    item.className = job.state + (state.job && job.id === state.job.id ? " current" : "");
    const open = document.createElement("a");
    open.href = "#" + job.id;
    open.textContent = job.name;
    const detail = document.createElement("small");
    detail.textContent = ` ${job.state} · ${job.info.frames} frames${describeMethod(job.settings)} · ${new Date(job.created * 1000).toLocaleString()}`;
    const remove = document.createElement("button");
    remove.textContent = "×";
    remove.title = "delete this job and its files";
    remove.onclick = () => attempt(async () => {
      await api(`api/jobs/${job.id}`, { method: "DELETE" });
      if (state.job && state.job.id === job.id) { location.hash = ""; $("editor").hidden = true; state.job = null; }
      refreshJobs();
    });
    item.append(open, detail, remove);
    return item;
  }));
}

async function openJob(id) {
  const job = await api(`api/jobs/${id}`);
  const changed = !state.job || state.job.id !== id;
  state.job = job;
  if (changed) {
    state.drafts.clear();
    state.guideFrames.clear();
    state.undo = [];
    const [w, h] = job.info.preview;
    $("overlay").width = w;
    $("overlay").height = h;
    $("frame").max = job.info.frames - 1;
    $("job-title").textContent = `${job.name} — ${job.info.width}×${job.info.height}, ${job.info.frames} frames, ${job.info.fps} fps`;
    applySettings(job.settings);
    state.frame = Math.min(job.keyframes.length ? job.keyframes[0] : 0, job.info.frames - 1);
  }
  $("editor").hidden = false;
  showJob();
  showFrame(state.frame);
  if (["queued", "running"].includes(job.state)) startPolling();
  refreshJobs();
}

function applySettings(settings) {
  document.querySelector(`input[name=mode][value=${settings.mode}]`).checked = true;
  $("prior").value = settings.prior;
  $("plate-kind").value = settings.plate || "auto";
  const named = ["green", "black", "white", "image"].includes(settings.background);
  $("bg-kind").value = named ? settings.background : "colour";
  if (!named) $("bg-colour").value = settings.background;
  for (const box of $("outputs").querySelectorAll("input")) box.checked = settings.outputs.includes(box.value);
  showMethods(settings);
}

// --- methods: the classical one, and the networks whose weights are in the server's --checkpoints folder ---------
function describeMethod(settings) {
  if (!settings.method || settings.method === "classical") return "";
  return ` · ${settings.mode} ${settings.method} (${settings.checkpoint})`;
}

function addOption(select, value, text) {
  const option = document.createElement("option");
  option.value = value;
  option.textContent = text;
  select.append(option);
}

// chosen: the settings a job recorded (kept in the lists even when the server no longer offers them)
function showMethods(chosen = null) {
  if (!state.config) return;  // start() calls it again once the server's config is in
  const mode = document.querySelector("input[name=mode]:checked").value;
  const catalogue = state.config.checkpoints;
  const files = catalogue.weights.filter((w) => w.mode === mode);
  const offered = state.config.methods[mode].filter((m) => m === "classical" || files.some((w) => w.method === m));
  const recorded = chosen && chosen.mode === mode && chosen.method ? chosen : null;
  const method = recorded ? recorded.method : (offered.includes($("method").value) ? $("method").value : "classical");
  $("method").replaceChildren();
  for (const name of offered) addOption($("method"), name, name);
  if (!offered.includes(method)) addOption($("method"), method, `${method} (not offered now)`);
  $("method").value = method;
  const weights = files.filter((w) => w.method === method).map((w) => w.name);
  const current = recorded ? recorded.checkpoint : (weights.includes($("checkpoint").value) ? $("checkpoint").value : weights[0]);
  $("checkpoint").replaceChildren();
  for (const name of weights) addOption($("checkpoint"), name, name);
  if (method !== "classical" && current && !weights.includes(current)) {
    addOption($("checkpoint"), current, `${current} (no longer in the folder)`);
  }
  if (current) $("checkpoint").value = current;
  $("checkpoint").hidden = $("checkpoint-label").hidden = method === "classical";
  $("method").disabled = mode === "auto";
  $("methods-note").textContent = methodsNote(mode, offered);
}

function methodsNote(mode, offered) {
  const catalogue = state.config.checkpoints;
  if (mode === "auto") return "";
  if (!catalogue.folder) return catalogue.note;
  const parts = ["No trained weights ship with vidmatte: the networks run the files the server's admin provided."];
  const missing = state.config.methods[mode].filter((m) => !offered.includes(m));
  if (missing.length) parts.push(`No weights for ${missing.join(", ")} in the folder.`);
  if (catalogue.refused.length) {
    parts.push("Could not use: " + catalogue.refused.map((r) => `${r.name} (${r.reason})`).join("; ") + ".");
  }
  return parts.join(" ");
}

// --- timeline -------------------------------------------------------------------------------------------------
function frameUrl(kind, index) {
  const ext = kind === "guide" ? "png" : "jpg";
  const version = kind === "input" ? "" : `?v=${state.runStamp}`;
  return url(`api/jobs/${state.job.id}/frames/${index}/${kind}.${ext}${version}`);
}

function showFrame(index) {
  const job = state.job;
  index = Math.max(0, Math.min(job.info.frames - 1, index));
  if (state.labels && isDirty()) state.drafts.set(state.frame, state.labels);
  state.frame = index;
  $("frame").value = index;
  const key = job.keyframes.includes(index);
  $("frame-label").textContent = `frame ${index} / ${job.info.frames - 1}` + (key ? " · keyframe" : "");
  $("view-input").src = frameUrl("input", index);
  for (const kind of ["alpha", "composition"]) {
    const img = $("view-" + kind);
    img.classList.remove("missing");
    img.onerror = () => img.classList.add("missing");
    if (job.previews) img.src = frameUrl(kind, index); else img.classList.add("missing");
  }
  state.undo = [];
  state.labels = state.drafts.get(index) || new Uint8Array($("overlay").width * $("overlay").height);
  drawLabels();
  if (state.drafts.has(index)) return;
  if (key) loadTrimap(url(`api/jobs/${job.id}/keyframes/${index}?v=${Date.now()}`), false);
  else if (state.guideFrames.has(index)) loadTrimap(frameUrl("guide", index), false);
}

function isDirty() { return state.labels.some((v) => v !== 0) && state.undo.length > 0; }

function showKeymarks() {
  const job = state.job;
  const at = (k) => `${(100 * k) / Math.max(1, job.info.frames - 1)}%`;
  const keys = job.keyframes.map((k) => {
    const mark = document.createElement("button");
    mark.className = "keymark";
    mark.style.left = at(k);
    mark.title = `keyframe ${k}`;
    mark.textContent = "◆";
    mark.onclick = () => showFrame(k);
    return mark;
  });
  // Runs of frames whose keyframes on either side were followed to different places (the run's report): a
  // keyframe in the middle of one settles it, and only that stretch is redone.
  const lost = lostSpans(job).map(([first, last]) => {
    const span = document.createElement("button");
    span.className = "lostspan";
    span.style.left = at(first);
    span.style.width = `calc(${at(last)} - ${at(first)})`;
    span.title = `frames ${first}-${last}: the keyframes disagree; add one near frame ${middle(first, last)}`;
    span.onclick = () => showFrame(middle(first, last));
    return span;
  });
  $("keymarks").replaceChildren(...lost, ...keys);
  showAdvice(job);
}

function lostSpans(job) { return (job.details || {}).contradicting_frames || []; }

function middle(first, last) { return Math.floor((first + last) / 2); }

function showAdvice(job) {
  const spans = job.state === "done" ? lostSpans(job) : [];
  const box = $("advice");
  box.hidden = spans.length === 0;
  if (box.hidden) { box.replaceChildren(); return; }
  const text = document.createElement("span");
  const runs = spans.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(", ");
  text.textContent = `Frames ${runs}: the keyframes on either side were followed to different places. ` +
    "Mark the subject on a frame in the middle and run again (only that stretch is redone).";
  const go = spans.map(([a, b]) => {
    const button = document.createElement("button");
    button.className = "go-to-frame";
    button.textContent = `go to frame ${middle(a, b)}`;
    button.onclick = () => showFrame(middle(a, b));
    return button;
  });
  box.replaceChildren(text, ...go);
}

function togglePlay() {
  if (state.playing) { clearInterval(state.playing); state.playing = null; $("play").innerHTML = "&#9654;"; return; }
  const fps = Math.min(12, state.job.info.fps || 12);
  $("play").textContent = "❚❚";
  state.playing = setInterval(() => {
    showFrame(state.frame + 1 >= state.job.info.frames ? 0 : state.frame + 1);
  }, 1000 / fps);
}

// --- painting -------------------------------------------------------------------------------------------------
function drawLabels() {
  const canvas = $("overlay");
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  const labels = state.labels;
  for (let i = 0; i < labels.length; i++) {
    const colour = COLOURS[labels[i]];
    if (colour) image.data.set(colour, 4 * i);
  }
  context.putImageData(image, 0, 0);
}

function pushUndo() {
  state.undo.push(state.labels.slice());
  if (state.undo.length > UNDO_DEPTH) state.undo.shift();
}

function canvasPoint(event) {
  const canvas = $("overlay");
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
}

function paintDisc(x, y, value) {
  const canvas = $("overlay");
  const radius = Number($("brush-size").value) / 2 * canvas.width / canvas.getBoundingClientRect().width;
  const r2 = radius * radius;
  for (let py = Math.max(0, Math.floor(y - radius)); py <= Math.min(canvas.height - 1, y + radius); py++) {
    for (let px = Math.max(0, Math.floor(x - radius)); px <= Math.min(canvas.width - 1, x + radius); px++) {
      if ((px - x) ** 2 + (py - y) ** 2 <= r2) state.labels[py * canvas.width + px] = value;
    }
  }
}

function paintLine(from, to, value) {
  const steps = Math.max(1, Math.ceil(Math.hypot(to[0] - from[0], to[1] - from[1])));
  for (let s = 0; s <= steps; s++) {
    paintDisc(from[0] + (to[0] - from[0]) * s / steps, from[1] + (to[1] - from[1]) * s / steps, value);
  }
}

function setupPainting() {
  const canvas = $("overlay");
  let last = null, boxStart = null;
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    const point = canvasPoint(event);
    if (state.tool === "person") { firstMask("person", point); return; }
    if (state.tool === "box") { boxStart = point; return; }
    pushUndo();
    last = point;
    paintDisc(...point, brushValue());
    drawLabels();
  });
  canvas.addEventListener("pointermove", (event) => {
    const point = canvasPoint(event);
    if (boxStart) { drawLabels(); drawBox(boxStart, point); return; }
    if (!last) return;
    paintLine(last, point, brushValue());
    last = point;
    drawLabels();
  });
  canvas.addEventListener("pointerup", (event) => {
    if (boxStart) { const start = boxStart; boxStart = null; firstMask("box", start, canvasPoint(event)); }
    last = null;
  });
}

function brushValue() {
  return { fg: LABEL.fg, bg: LABEL.bg, unknown: LABEL.unknown, erase: LABEL.none }[state.tool];
}

function drawBox(a, b) {
  const context = $("overlay").getContext("2d");
  context.strokeStyle = "#ff2d6f";
  context.lineWidth = 2;
  context.strokeRect(a[0], a[1], b[0] - a[0], b[1] - a[1]);
}

function selectTool(tool) {
  state.tool = tool;
  for (const button of document.querySelectorAll("[data-tool]")) button.classList.toggle("active", button.dataset.tool === tool);
  $("overlay").dataset.brush = tool;  // for the cursor style; not data-tool, which marks the tool buttons
  $("tool-help").textContent = {
    person: "Click on a person: RVM's matte of this frame, the part under the click.",
    box: "Drag a box around the object: GrabCut separates it from its surroundings.",
    fg: "Paint over the object (sure foreground).", bg: "Paint over what is not the object (sure background).",
    unknown: "Paint the uncertain edge (hair, fur, motion blur): alpha is solved there.",
    erase: "Erase painted labels.",
  }[tool];
}

// frame pixels <-> preview pixels
function toFrame(point) {
  const [w, h] = state.job.info.preview;
  return [point[0] * state.job.info.width / w, point[1] * state.job.info.height / h];
}

async function firstMask(method, a, b = [0, 0]) {
  await attempt(async () => {
    const [x0, y0] = toFrame(a), [x1, y1] = toFrame(b);
    const query = `frame=${state.frame}&method=${method}&x0=${x0}&y0=${y0}&x1=${x1}&y1=${y1}`;
    $("tool-help").textContent = method === "person" ? "finding the person..." : "GrabCut...";
    const blob = await api(`api/jobs/${state.job.id}/first-mask?${query}`, { method: "POST" });
    await loadTrimap(URL.createObjectURL(blob), true);
    selectTool("fg");
  });
  drawLabels();
}

async function grabcutScribbles() {
  await attempt(async () => {
    const scribbles = await labelsPng((label) => (label === LABEL.fg ? 255 : label === LABEL.bg ? 0 : 128));
    const blob = await api(`api/jobs/${state.job.id}/first-mask?frame=${state.frame}&method=scribble`,
                           { method: "POST", body: scribbles, headers: { "Content-Type": "image/png" } });
    await loadTrimap(URL.createObjectURL(blob), true);
  });
}

// A trimap image (any size) -> the labels of this frame, read pixel by pixel without smoothing.
function loadTrimap(source, undoable) {
  const frame = state.frame;
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => {
      if (state.frame !== frame) { resolve(); return; }
      const canvas = document.createElement("canvas");
      canvas.width = $("overlay").width;
      canvas.height = $("overlay").height;
      const context = canvas.getContext("2d");
      context.imageSmoothingEnabled = false;
      context.drawImage(image, 0, 0, canvas.width, canvas.height);
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
      if (undoable) pushUndo();
      const labels = new Uint8Array(canvas.width * canvas.height);
      for (let i = 0; i < labels.length; i++) {
        const grey = pixels[4 * i];
        labels[i] = grey >= 230 ? LABEL.fg : grey <= 25 ? LABEL.none : LABEL.unknown;
      }
      state.labels = labels;
      drawLabels();
      resolve();
    };
    image.onerror = () => reject(new Error("the guidance image could not be loaded"));
    image.src = source;
  });
}

function labelsPng(greyOf) {
  const canvas = document.createElement("canvas");
  canvas.width = $("overlay").width;
  canvas.height = $("overlay").height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  state.labels.forEach((label, i) => {
    const grey = greyOf(label);
    image.data.set([grey, grey, grey, 255], 4 * i);
  });
  context.putImageData(image, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function setKeyframe(body) {
  await attempt(async () => {
    const png = body || await labelsPng((label) => GREY_OF_LABEL[label]);
    const { keyframes } = await api(`api/jobs/${state.job.id}/keyframes/${state.frame}`,
                                    { method: "PUT", body: png, headers: { "Content-Type": "image/png" } });
    state.job.keyframes = keyframes;
    state.drafts.delete(state.frame);
    state.undo = [];
    if (!document.querySelector("input[name=mode][value=guided]").checked) {
      document.querySelector("input[name=mode][value=guided]").checked = true;
      showMethods();
    }
    showKeymarks();
    showFrame(state.frame);
    say(`frame ${state.frame} is a keyframe`, false);
  });
}

async function removeKeyframe() {
  await attempt(async () => {
    const { keyframes } = await api(`api/jobs/${state.job.id}/keyframes/${state.frame}`, { method: "DELETE" });
    state.job.keyframes = keyframes;
    showKeymarks();
    showFrame(state.frame);
  });
}

async function previewPropagation() {
  await attempt(async () => {
    $("tool-help").textContent = "propagating...";
    const { frames } = await api(`api/jobs/${state.job.id}/propagate?frame=${state.frame}`, { method: "POST" });
    state.guideFrames = new Set(frames.filter((f) => !state.job.keyframes.includes(f)));
    state.runStamp = Date.now();
    $("tool-help").textContent = `propagated over frames ${frames[0]}..${frames[frames.length - 1]}: step through them to check`;
  });
}

// --- run ----------------------------------------------------------------------------------------------------------
function runSettings() {
  const kind = $("bg-kind").value;
  return {
    mode: document.querySelector("input[name=mode]:checked").value,
    prior: $("prior").value,
    plate: $("plate-kind").value,
    background: kind === "colour" ? $("bg-colour").value : kind,
    outputs: [...$("outputs").querySelectorAll("input:checked")].map((box) => box.value),
    method: $("method").value || "classical",
    checkpoint: ($("method").value || "classical") === "classical" ? null : $("checkpoint").value || null,
  };
}

async function run() {
  await attempt(async () => {
    state.job = await api(`api/jobs/${state.job.id}/run`, {
      method: "POST", body: JSON.stringify(runSettings()), headers: { "Content-Type": "application/json" },
    });
    state.runStamp = Date.now();
    showJob();
    refreshJobs();  // the list shows the job queued or running, not the state it had before
    startPolling();
  });
}

function startPolling() {
  if (state.poll) return;
  state.poll = setInterval(async () => {
    try {
      state.job = await api(`api/jobs/${state.job.id}`);
    } catch (error) { say(error.message); return; }
    showJob();
    if (!["queued", "running"].includes(state.job.state)) {
      clearInterval(state.poll);
      state.poll = null;
      state.runStamp = Date.now();
      showFrame(state.frame);
      refreshJobs();
    } else if (state.frame <= (state.job.progress || {}).done) {
      showPreviewsOnly();
    }
  }, 500);
}

function showPreviewsOnly() {
  state.runStamp = Date.now();
  for (const kind of ["alpha", "composition"]) {
    $("view-" + kind).classList.remove("missing");
    $("view-" + kind).src = frameUrl(kind, state.frame);
  }
}

function describeProgress(job) {
  const p = job.progress;
  if (job.state === "queued") return job.queue_position ? `queued (${job.queue_position} ahead)` : "queued";
  if (!p) return job.state;
  const eta = p.eta == null ? "" : `, ETA ${Math.ceil(p.eta)} s`;
  return `pass ${p.pass_index + 1}/${p.passes} ${p.pass}: ${p.done}/${p.total ?? "?"} frames, ${p.fps} fps${eta}`;
}

function showJob() {
  const job = state.job;
  const active = ["queued", "running"].includes(job.state);
  $("run").disabled = active;
  $("cancel").disabled = !active;
  const p = job.progress;
  let percent = 0;
  if (job.state === "done") percent = 100;
  else if (p && p.total) percent = 100 * (p.pass_index + p.done / p.total) / p.passes;
  $("progress").value = percent;
  const text = job.state === "done" ? "done: 100%" : job.state === "running" ? `${Math.floor(percent)}% · ${describeProgress(job)}`
    : job.state === "queued" ? describeProgress(job) : job.error ? `${job.state}: ${job.error}` : job.state;
  $("progress-text").textContent = text;
  $("progress-text").className = job.state;
  const links = Object.entries(job.downloads || {}).map(([name, file]) => {
    const link = document.createElement("a");
    link.href = url(`api/jobs/${job.id}/download/${name}`);
    link.textContent = file;
    link.className = "button download";
    link.dataset.output = name;
    link.setAttribute("download", "");
    return link;
  });
  $("downloads").replaceChildren(...links);
  showKeymarks();
}

async function cancel() {
  await attempt(async () => { await api(`api/jobs/${state.job.id}/cancel`, { method: "POST" }); });
}

async function uploadPlate(file) {
  await attempt(async () => {
    await api(`api/jobs/${state.job.id}/plate`, { method: "PUT", body: file });
    $("plate-kind").value = "image";
    document.querySelector("input[name=mode][value=plate]").checked = true;
    showMethods();
    say("plate image set", false);
  });
}

async function uploadBackground(file) {
  await attempt(async () => {
    await api(`api/jobs/${state.job.id}/background`, { method: "PUT", body: file });
    $("bg-kind").value = "image";
    say("background image set", false);
  });
}

// --- start ----------------------------------------------------------------------------------------------------------
async function start() {
  // Handlers first, then the awaits: a file chosen while the page is still asking the server must not be lost.
  state.configReady = api("api/config");
  $("upload").onchange = (e) => { if (e.target.files[0]) upload(e.target.files[0]); e.target.value = ""; };
  $("mask-upload").onchange = (e) => { if (e.target.files[0]) setKeyframe(e.target.files[0]); e.target.value = ""; };
  $("bg-image").onchange = (e) => { if (e.target.files[0]) uploadBackground(e.target.files[0]); e.target.value = ""; };
  $("plate-image").onchange = (e) => { if (e.target.files[0]) uploadPlate(e.target.files[0]); e.target.value = ""; };
  $("frame").oninput = (e) => showFrame(Number(e.target.value));
  $("prev").onclick = () => showFrame(state.frame - 1);
  $("next").onclick = () => showFrame(state.frame + 1);
  $("play").onclick = togglePlay;
  for (const button of document.querySelectorAll("[data-tool]")) button.onclick = () => selectTool(button.dataset.tool);
  $("grabcut-scribbles").onclick = grabcutScribbles;
  $("undo").onclick = () => { if (state.undo.length) { state.labels = state.undo.pop(); drawLabels(); } };
  $("clear").onclick = () => { pushUndo(); state.labels.fill(0); drawLabels(); };
  $("set-keyframe").onclick = () => setKeyframe();
  $("remove-keyframe").onclick = removeKeyframe;
  $("preview-propagation").onclick = previewPropagation;
  $("run").onclick = run;
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.onchange = () => showMethods();
  $("method").onchange = () => showMethods();
  $("cancel").onclick = cancel;
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || !state.job) return;
    if (e.key === "ArrowLeft") showFrame(state.frame - 1);
    if (e.key === "ArrowRight") showFrame(state.frame + 1);
    if (e.key === "z" && (e.ctrlKey || e.metaKey)) $("undo").click();
  });
  window.addEventListener("hashchange", () => { if (location.hash.length > 1) attempt(() => openJob(location.hash.slice(1))); });
  setupPainting();
  selectTool("fg");
  state.config = await state.configReady;
  showMethods();
  await refreshJobs();
  if (location.hash.length > 1) await attempt(() => openJob(location.hash.slice(1)));
  document.body.dataset.ready = "true";  // for scripts driving the page (the browser tests)
}

attempt(start);

// vidmatte's page: plain JavaScript, a 2D canvas for painting, no build step. Every action is one HTTP call to the
// server (src/vidmatte/web/app.py); the job id in the address (#id) lets a reload pick the job up again.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN = new URLSearchParams(location.search).get("token");
const LABEL = { none: 0, bg: 1, unknown: 2, fg: 3 };
const GREY_OF_LABEL = [0, 0, 128, 255];  // what a keyframe image holds: unpainted counts as background
const COLOURS = [null, [40, 90, 255, 90], [255, 200, 0, 140], [0, 220, 90, 120]];
const PROPOSED = [null, null, [255, 200, 0, 140], [255, 0, 200, 120]];  // a proposed first mask: magenta
const UNDO_DEPTH = 30;
// Each subject's colour: its foreground in the overlay (object 1's is the foreground green the page always had), its
// keyframe ticks on the timeline and its downloads. Further ids take these colours in turn.
const OBJECT_COLOURS = [[0, 220, 90], [255, 90, 30], [0, 180, 240], [170, 90, 255], [255, 80, 180], [190, 170, 0],
                        [150, 90, 50], [0, 150, 140]];

const state = {
  config: null, job: null, frame: 0, tool: "fg", labels: null, drafts: new Map(), undo: [],
  guideFrames: new Set(), playing: null, poll: null, runStamp: Date.now(), proposal: null, liveShown: null,
  object: 1, others: new Map(),  // the object being marked; the other objects' keyframes on this frame (faint)
};

// --- objects: several subjects marked in one job -----------------------------------------------------------------
function objectIds(job = state.job) {
  return Object.keys(job.objects || { 1: job.keyframes }).map(Number).sort((a, b) => a - b);
}

function keyframesOf(id, job = state.job) {
  return (job.objects || { 1: job.keyframes })[id] || [];
}

function objectColour(id) { return OBJECT_COLOURS[(id - 1) % OBJECT_COLOURS.length]; }

function objectCss(id) { return `rgb(${objectColour(id).join(", ")})`; }

function several(job = state.job) { return objectIds(job).length > 1; }

// What the server answered about keyframes ({keyframes, object, objects}): the job's record of every object.
function keepObjects(answer) {
  state.job.objects = answer.objects;
  state.job.keyframes = answer.objects["1"];
}

function showObjects() {
  const ids = objectIds();
  if (!ids.includes(state.object)) state.object = 1;
  $("object-list").replaceChildren(...ids.map((id) => {
    const button = document.createElement("button");
    button.className = "object-choice" + (id === state.object ? " active" : "");
    button.dataset.object = id;
    button.style.borderLeftColor = objectCss(id);
    const count = keyframesOf(id).length;
    button.textContent = `object ${id}`;
    button.title = `mark object ${id} (${count} keyframe${count === 1 ? "" : "s"})`;
    button.onclick = () => selectObject(id);
    return button;
  }));
  document.querySelector("button.fg").style.borderLeftColor = objectCss(state.object);  // the brush paints it
  $("remove-object").disabled = state.object === 1;
  $("remove-object").title = state.object === 1 ? "object 1 stays (remove its keyframes instead)"
    : `remove object ${state.object} and its keyframes`;
}

function selectObject(id, frame = state.frame) {
  if (state.labels && isDirty()) state.drafts.set(draftKey(state.frame), state.labels);
  state.labels = null;  // this frame's marks were the other object's: kept as its draft above, not carried over
  state.object = id;
  showObjects();
  showKeymarks();
  showGuideNote();
  showFrame(frame);
}

async function addObject() {
  await attempt(async () => {
    const answer = await api(`api/jobs/${state.job.id}/objects`, { method: "POST" });
    keepObjects(answer);
    selectObject(answer.object);
    say(`object ${answer.object} added: mark it on a frame and press Set keyframe`, false);
  });
}

async function removeObject() {
  const id = state.object;
  if (id === 1) return;
  await attempt(async () => {
    keepObjects(await api(`api/jobs/${state.job.id}/objects/${id}`, { method: "DELETE" }));
    for (const key of [...state.drafts.keys()]) if (key.startsWith(`${id}:`)) state.drafts.delete(key);
    if (state.job.guide_preview && (state.job.guide_preview.object || 1) === id) forgetGuidePreview();
    selectObject(1);
    say(`object ${id} and its keyframes were removed`, false);
  });
}

function draftKey(frame) { return `${state.object}:${frame}`; }


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
    if (request.status >= 400) {  // the reader's messages name the file already; the size checks do not
      const error = body.error || `HTTP ${request.status}`;
      say(error.includes(file.name) ? error : `${file.name}: ${error}`);
      return;
    }
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
    const objects = objectIds(job).length > 1 ? ` · ${objectIds(job).length} objects` : "";
    detail.textContent = ` ${job.state} · ${job.info.frames} frames${objects}${describeMethod(job.settings)} · ` +
      new Date(job.created * 1000).toLocaleString();
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
    state.object = 1;
    state.undo = [];
    const [w, h] = job.info.preview;
    $("overlay").width = w;
    $("overlay").height = h;
    $("frame").max = job.info.frames - 1;
    $("job-title").textContent = `${job.name} — ${job.info.width}×${job.info.height}, ${job.info.frames} frames, ${job.info.fps} fps`;
    applySettings(job.settings);
    state.frame = Math.min(job.keyframes.length ? job.keyframes[0] : 0, job.info.frames - 1);
    state.proposal = null;
    $("proposal").hidden = true;
    const shown = job.guide_preview;
    const guided = shown ? keyframesOf(shown.object || 1, job) : [];
    state.guideFrames = new Set(shown ? shown.frames.filter((f) => !guided.includes(f)) : []);
    showGuideNote();
  }
  showObjects();
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
  showSwatch();
  for (const box of $("outputs").querySelectorAll("input")) box.checked = settings.outputs.includes(box.value);
  $("frames-format").value = `${settings.image_format || "png"}:${settings.bit_depth || ""}`;
  $("premultiplied").checked = Boolean(settings.premultiplied);
  showMethods(settings);
}

// The swatch shows the colour a run would use: a named background's own colour, none for an image.
function showSwatch() {
  const kind = $("bg-kind").value;
  const named = state.config && state.config.colours[kind];
  if (named) $("bg-colour").value = named;
  $("bg-colour").hidden = kind === "image";
}

// Each mode's controls only: the subject tools and the prior in guided mode, the plate in background mode.
function showModeControls(mode) {
  for (const element of document.querySelectorAll("[data-modes]")) {
    element.hidden = !element.dataset.modes.split(" ").includes(mode);
  }
}

// The page's choices are the job's: saved as they change, so reopening the job shows them (not the defaults).
async function saveSettings() {
  if (!state.job || ["queued", "running"].includes(state.job.state)) return;  // a run is using them
  await attempt(async () => {
    const job = await api(`api/jobs/${state.job.id}/settings`, {
      method: "PUT", body: JSON.stringify(runSettings()), headers: { "Content-Type": "application/json" },
    });
    state.job.settings = job.settings;
  });
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
  showModeControls(mode);
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
  $("method").disabled = mode === "convert";
  $("methods-note").textContent = methodsNote(mode, offered);
}

function methodsNote(mode, offered) {
  const catalogue = state.config.checkpoints;
  if (mode === "convert") return "";
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
  if (state.labels && isDirty()) state.drafts.set(draftKey(state.frame), state.labels);
  state.frame = index;
  $("frame").value = index;
  const key = keyframesOf(state.object).includes(index);
  const keyOf = objectIds().filter((id) => keyframesOf(id).includes(index));
  $("frame-label").textContent = `frame ${index} / ${job.info.frames - 1}` + (!keyOf.length ? ""
    : several() ? ` · keyframe of object ${keyOf.join(", ")}` : " · keyframe");
  $("view-input").src = frameUrl("input", index);
  // Only pictures the server says exist are asked for: the running run's as they are written, else the last
  // completed run's (which a failed run leaves in place).
  const active = ["queued", "running"].includes(job.state);
  const live = active && index < (job.run_preview_frames || 0);
  const kept = !active && job.previews && index < job.preview_frames;
  state.liveShown = live ? index : null;
  for (const kind of ["alpha", "composition"]) {
    const img = $("view-" + kind);
    img.classList.remove("missing");
    img.onerror = () => img.classList.add("missing");
    if (live || kept) img.src = frameUrl(live ? "run_" + kind : kind, index); else img.classList.add("missing");
  }
  if (state.proposal) rejectProposal("the frame changed: the proposed mask was dropped.");
  state.undo = [];
  state.labels = state.drafts.get(draftKey(index)) || new Uint8Array($("overlay").width * $("overlay").height);
  showOtherObjects(index, keyOf.filter((id) => id !== state.object));
  drawLabels();
  if (state.drafts.has(draftKey(index))) return;
  if (key) loadTrimap(keyframeUrl(index, state.object), false);
  else if (state.guideFrames.has(index) && guideObject() === state.object) loadTrimap(frameUrl("guide", index), false);
}

function keyframeUrl(index, id) {
  return url(`api/jobs/${state.job.id}/keyframes/${index}?object=${id}&v=${Date.now()}`);
}

function guideObject() { return state.job.guide_preview ? state.job.guide_preview.object || 1 : null; }

// The other objects' keyframes on this frame, drawn faintly in their colours under the marks being made: where the
// subjects meet, each one's marks can be made against the others'.
function showOtherObjects(frame, ids) {
  state.others = new Map();
  for (const id of ids) {
    trimapLabels(keyframeUrl(frame, id)).then((labels) => {
      if (state.frame !== frame) return;
      state.others.set(id, labels);
      drawLabels();
    }).catch(() => {});
  }
}

function isDirty() { return state.labels.some((v) => v !== 0) && state.undo.length > 0; }

function showKeymarks() {
  const job = state.job;
  const at = (k) => `${(100 * k) / Math.max(1, job.info.frames - 1)}%`;
  // One object: the ticks as they always were. Several: each object's in its colour, side by side where two
  // objects share a keyframe.
  const ids = objectIds(job);
  const keys = ids.flatMap((id, place) => keyframesOf(id, job).map((k) => {
    const mark = document.createElement("button");
    mark.className = "keymark";
    mark.style.left = ids.length > 1 ? `calc(${at(k)} + ${(place - (ids.length - 1) / 2) * 7}px)` : at(k);
    mark.title = ids.length > 1 ? `object ${id}: keyframe ${k}` : `keyframe ${k}`;
    mark.textContent = "◆";
    if (ids.length > 1) {
      mark.dataset.object = id;
      mark.style.color = objectCss(id);
      mark.classList.toggle("current", id === state.object);
    }
    mark.onclick = () => (id === state.object ? showFrame(k) : selectObject(id, k));
    return mark;
  }));
  // Runs of frames whose keyframes on either side were followed to different places (the run's report): a
  // keyframe in the middle of one settles it, and only that stretch is redone. Several objects: each one's report,
  // its spans underlined in its colour.
  const lost = reports(job).flatMap(({ id, details }) => lostSpans(details).map(([first, last]) => {
    const span = document.createElement("button");
    span.className = "lostspan";
    span.style.left = at(first);
    span.style.width = `calc(${at(last)} - ${at(first)})`;
    span.title = `${objectPrefix(id)}frames ${first}-${last}: the keyframes disagree; ` +
      `add one near frame ${middle(first, last)}`;
    markObject(span, id);
    span.onclick = () => goTo(id, middle(first, last));
    return span;
  }));
  // Runs of frames where the subject tracker's confidence is low (probably lost or leaking): the run suggests the
  // one frame where another keyframe would help most.
  const doubtful = reports(job).flatMap(({ id, details }) => {
    const suggested = suggestedKeyframe(details);
    return doubtfulSpans(details).map(([first, last]) => {
      const span = document.createElement("button");
      span.className = "doubtspan";
      span.style.left = at(first);
      span.style.width = `calc(${at(last)} - ${at(first)})`;
      const inside = suggested !== null && suggested >= first && suggested <= last;
      const target = inside ? suggested : middle(first, last);
      span.title = `${objectPrefix(id)}frames ${first}-${last}: the subject is probably lost or leaking here; ` +
        `look at frame ${target}`;
      markObject(span, id);
      span.onclick = () => goTo(id, target);
      return span;
    });
  });
  $("keymarks").replaceChildren(...doubtful, ...lost, ...keys);
  showAdvice(job);
}

// The run's reports: one for the subject, or one per object ({id, details}; id null for a single subject).
function reports(job) {
  const details = job.details || {};
  if (!details.objects) return [{ id: null, details }];
  return Object.entries(details.objects).map(([id, report]) => ({ id: Number(id), details: report || {} }));
}

function objectPrefix(id) { return id === null ? "" : `object ${id}: `; }

function markObject(element, id) {
  if (id === null) return;
  element.dataset.object = id;
  element.style.boxShadow = `0 3px 0 ${objectCss(id)}`;
}

function goTo(id, frame) {
  if (id === null || id === state.object) showFrame(frame); else selectObject(id, frame);
}

function lostSpans(details) { return details.contradicting_frames || []; }

function doubtfulSpans(details) { return details.doubtful_frames || []; }

function suggestedKeyframe(details) {
  const frame = details.suggested_keyframe;
  return Number.isInteger(frame) ? frame : null;
}

function middle(first, last) { return Math.floor((first + last) / 2); }

function showAdvice(job) {
  const done = job.state === "done";
  const parts = done ? reports(job).flatMap(({ id, details }) => adviceOf(id, details)) : [];
  const box = $("advice");
  box.hidden = parts.length === 0;
  box.replaceChildren(...parts);
}

// One subject's advice (id: its object, null for a single subject), in its colour when there are several.
function adviceOf(id, details) {
  const spans = lostSpans(details);
  const doubtful = doubtfulSpans(details);
  const suggested = suggestedKeyframe(details);
  if (spans.length === 0 && suggested === null) return [];
  const runsOf = (list) => list.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(", ");
  const parts = [];
  if (id !== null) {
    const chip = document.createElement("span");
    chip.className = "object-chip";
    chip.style.borderLeftColor = objectCss(id);
    chip.textContent = `object ${id}`;
    parts.push(chip);
  }
  if (suggested !== null) {
    const text = document.createElement("span");
    text.textContent = `Frames ${runsOf(doubtful)}: the subject is probably lost or leaking. ` +
      `One more keyframe at frame ${suggested} would help most.`;
    const button = document.createElement("button");
    button.className = "go-to-frame go-to-suggested";
    button.textContent = `go to frame ${suggested}`;
    if (id !== null) button.dataset.object = id;
    button.onclick = () => goTo(id, suggested);
    parts.push(text, button);
  }
  if (spans.length) {
    const text = document.createElement("span");
    text.textContent = `Frames ${runsOf(spans)}: the keyframes on either side were followed to different places. ` +
      "Mark the subject on a frame in the middle and run again (only that stretch is redone).";
    parts.push(text, ...spans.map(([a, b]) => {
      const button = document.createElement("button");
      button.className = "go-to-frame";
      button.textContent = `go to frame ${middle(a, b)}`;
      if (id !== null) button.dataset.object = id;
      button.onclick = () => goTo(id, middle(a, b));
      return button;
    }));
  }
  const line = document.createElement("div");
  line.className = "advice-line";
  line.append(...parts);
  return id === null ? parts : [line];
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
  const [labels, colours] = state.proposal ? [state.proposal.labels, PROPOSED] : [state.labels, objectLabelColours()];
  for (const [id, others] of state.proposal ? [] : state.others) {  // other objects' foreground, faint, beneath
    const faint = [...objectColour(id), 70];
    for (let i = 0; i < others.length; i++) if (others[i] === LABEL.fg) image.data.set(faint, 4 * i);
  }
  for (let i = 0; i < labels.length; i++) {
    const colour = colours[labels[i]];
    if (colour) image.data.set(colour, 4 * i);
  }
  context.putImageData(image, 0, 0);
}

// The marks' colours for the object being marked: its own foreground colour, background and unknown as always.
function objectLabelColours() {
  return [null, COLOURS[LABEL.bg], COLOURS[LABEL.unknown], [...objectColour(state.object), 120]];
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
    if (state.proposal) { $("tool-help").textContent = "Accept or Undo the proposed mask first."; return; }
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

const GESTURE = { person: "RVM under the click", box: "GrabCut from the box", scribble: "GrabCut from the scribbles" };

async function firstMask(method, a, b = [0, 0]) {
  const [x0, y0] = toFrame(a), [x1, y1] = toFrame(b);
  await proposeFirstMask(method, `x0=${x0}&y0=${y0}&x1=${x1}&y1=${y1}`);
}

async function grabcutScribbles() {
  if (state.proposal) { $("tool-help").textContent = "Accept or Undo the proposed mask first."; return; }
  const scribbles = await labelsPng((label) => (label === LABEL.fg ? 255 : label === LABEL.bg ? 0 : 128));
  await proposeFirstMask("scribble", "", { body: scribbles, headers: { "Content-Type": "image/png" } });
}

// A one-gesture mask is only proposed: drawn in magenta over the frame until the user accepts or undoes it (a box
// or scribbles can catch the wrong region, and painting over a wrong mask costs more than a second gesture).
async function proposeFirstMask(method, query, options = {}) {
  const frame = state.frame;
  $("tool-help").textContent = method === "person" ? "finding the person..." : "GrabCut...";
  const proposed = await attempt(async () => {
    const blob = await api(`api/jobs/${state.job.id}/first-mask?frame=${frame}&method=${method}&${query}`,
                           Object.assign({ method: "POST" }, options));
    return trimapLabels(URL.createObjectURL(blob));
  });
  if (!proposed || state.frame !== frame) {
    $("tool-help").textContent = `${GESTURE[method]} proposed no mask.`;
    return;
  }
  const share = Math.round(100 * proposed.filter((l) => l !== LABEL.none).length / proposed.length);
  state.proposal = { labels: proposed, method };
  const text = `${GESTURE[method]} proposed the region in magenta (${share}% of the frame). ` +
    "Accept it, or Undo to keep the marks you had.";
  $("proposal-text").textContent = `Proposed mask (magenta, ${share}% of the frame):`;
  $("tool-help").textContent = text;
  $("proposal").hidden = false;
  drawLabels();
}

function acceptProposal() {
  if (!state.proposal) return;
  pushUndo();  // Undo (the brushes' button) brings back what was there before the accepted mask
  const method = state.proposal.method;
  state.labels = state.proposal.labels;
  state.proposal = null;
  $("proposal").hidden = true;
  selectTool("fg");
  $("tool-help").textContent =
    `Accepted the mask of ${GESTURE[method]}: refine it with the brushes, then Set keyframe.`;
  drawLabels();
}

function rejectProposal(why = "undone: the frame's marks are as they were. Try a tighter box or more scribbles.") {
  state.proposal = null;
  $("proposal").hidden = true;
  $("tool-help").textContent = `The proposed mask was ${why}`;
  drawLabels();
}

// A trimap image (any size) -> the labels of this frame, read pixel by pixel without smoothing.
async function loadTrimap(source, undoable) {
  const frame = state.frame;
  const labels = await trimapLabels(source);
  if (state.frame !== frame) return;
  if (undoable) pushUndo();
  state.labels = labels;
  drawLabels();
}

function trimapLabels(source) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = $("overlay").width;
      canvas.height = $("overlay").height;
      const context = canvas.getContext("2d");
      context.imageSmoothingEnabled = false;
      context.drawImage(image, 0, 0, canvas.width, canvas.height);
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
      const labels = new Uint8Array(canvas.width * canvas.height);
      for (let i = 0; i < labels.length; i++) {
        const grey = pixels[4 * i];
        labels[i] = grey >= 230 ? LABEL.fg : grey <= 25 ? LABEL.none : LABEL.unknown;
      }
      resolve(labels);
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
  if (state.proposal && !body) { say("Accept or Undo the proposed mask first."); return; }
  await attempt(async () => {
    const png = body || await labelsPng((label) => GREY_OF_LABEL[label]);
    keepObjects(await api(`api/jobs/${state.job.id}/keyframes/${state.frame}?object=${state.object}`,
                          { method: "PUT", body: png, headers: { "Content-Type": "image/png" } }));
    state.drafts.delete(draftKey(state.frame));
    state.undo = [];
    forgetGuidePreview(state.frame);
    if (!document.querySelector("input[name=mode][value=guided]").checked) {
      document.querySelector("input[name=mode][value=guided]").checked = true;
      showMethods();
      await saveSettings();
    }
    showObjects();
    showKeymarks();
    showFrame(state.frame);
    const whose = several() ? ` of object ${state.object}` : "";
    say(`frame ${state.frame} is a keyframe${whose}`, false);
  });
}

async function removeKeyframe() {
  await attempt(async () => {
    keepObjects(await api(`api/jobs/${state.job.id}/keyframes/${state.frame}?object=${state.object}`,
                          { method: "DELETE" }));
    forgetGuidePreview(state.frame);
    showObjects();
    showKeymarks();
    showFrame(state.frame);
  });
}

async function previewPropagation() {
  await attempt(async () => {
    $("tool-help").textContent = "propagating...";
    const { frames, keyframe, object } = await api(
      `api/jobs/${state.job.id}/propagate?frame=${state.frame}&object=${state.object}`, { method: "POST" });
    state.job.guide_preview = { keyframe, frames, object };
    state.guideFrames = new Set(frames.filter((f) => !keyframesOf(object).includes(f)));
    state.runStamp = Date.now();
    $("tool-help").textContent = "";
    showGuideNote();
  });
}

// The propagation preview is kept with the job (a reload shows it): say how far it went.
function showGuideNote() {
  const shown = state.job.guide_preview;
  const last = state.job.info.frames - 1;
  if (!shown) { $("guide-note").textContent = ""; return; }
  const [first, end] = [shown.frames[0], shown.frames[shown.frames.length - 1]];
  const whose = several() ? `object ${shown.object || 1}'s ` : "";
  $("guide-note").textContent = `Preview: ${whose}keyframe ${shown.keyframe} propagated over frames ${first}..${end} ` +
    `of 0..${last} (the preview carries a keyframe ${end - first} frames on; a run covers the whole clip). ` +
    "Step through them to check.";
}

function forgetGuidePreview(index = null) {  // the server dropped it: that keyframe changed (null: its object went)
  const shown = state.job.guide_preview;
  if (!shown || (index !== null && (shown.keyframe !== index || (shown.object || 1) !== state.object))) return;
  state.job.guide_preview = null;
  state.guideFrames.clear();
  showGuideNote();
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
    image_format: $("frames-format").value.split(":")[0],
    bit_depth: Number($("frames-format").value.split(":")[1]) || null,
    premultiplied: $("premultiplied").checked,
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
    showFrame(state.frame);  // the last run's pictures give way to this run's as they are written
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
    } else if (state.frame < state.job.run_preview_frames && state.liveShown !== state.frame) {
      showPreviewsOnly();  // this frame's pictures were just written (only those that exist are asked for)
    }
  }, 500);
}

function showPreviewsOnly() {
  state.liveShown = state.frame;
  for (const kind of ["alpha", "composition"]) {
    $("view-" + kind).classList.remove("missing");
    $("view-" + kind).src = frameUrl("run_" + kind, state.frame);
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
  const warned = job.state === "done" ? (job.details || {}).warnings || [] : [];  // the run's warning channel
  $("progress-text").textContent = warned.length ? `${text} · warning: ${warned.join("; ")}` : text;
  $("progress-text").className = job.state;
  // Several objects: each output per object ("composition.2"), grouped by object under its colour.
  const groups = new Map();
  for (const [name, file] of Object.entries(job.downloads || {})) {
    const id = name.includes(".") ? Number(name.split(".")[1]) : null;
    const link = document.createElement("a");
    link.href = url(`api/jobs/${job.id}/download/${name}`);
    link.textContent = file;
    link.className = "button download";
    link.dataset.output = name;
    link.setAttribute("download", "");
    if (id !== null) { link.dataset.object = id; link.style.borderLeft = `6px solid ${objectCss(id)}`; }
    if (!groups.has(id)) groups.set(id, []);
    groups.get(id).push(link);
  }
  $("downloads").replaceChildren(...[...groups].flatMap(([id, links]) => {
    if (id === null) return links;
    const group = document.createElement("span");
    group.className = "group object-downloads";
    group.dataset.object = id;
    const chip = document.createElement("span");
    chip.className = "object-chip";
    chip.style.borderLeftColor = objectCss(id);
    chip.textContent = `object ${id}:`;
    group.append(chip, ...links);
    return [group];
  }));
  $("downloads-from").textContent = describeDownloads(job);
  showKeymarks();
}

// Which run the downloads came from: a failed, refused or cancelled run leaves the last completed run's.
function describeDownloads(job) {
  const from = job.downloads_from;
  if (!from || !links(job)) return "";
  const method = from.method && from.method !== "classical" ? ` ${from.method}` : "";
  const finished = new Date(from.finished * 1000).toLocaleString();
  const made = `From run ${from.run} (${from.mode}${method}), finished ${finished}.`;
  if (from.latest) return made;
  if (["queued", "running"].includes(job.state)) return `${made} Run ${job.runs} replaces them when it completes.`;
  return `${made} The latest run (${job.runs}) ${job.state}: it replaced nothing.`;
}

function links(job) { return Object.keys(job.downloads || {}).length; }

async function cancel() {
  await attempt(async () => { await api(`api/jobs/${state.job.id}/cancel`, { method: "POST" }); });
}

async function uploadPlate(file) {
  await attempt(async () => {
    await api(`api/jobs/${state.job.id}/plate`, { method: "PUT", body: file });
    $("plate-kind").value = "image";
    document.querySelector("input[name=mode][value=background]").checked = true;
    showMethods();
    await saveSettings();
    say("plate image set", false);
  });
}

async function uploadBackground(file) {
  await attempt(async () => {
    await api(`api/jobs/${state.job.id}/background`, { method: "PUT", body: file });
    $("bg-kind").value = "image";
    showSwatch();
    await saveSettings();
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
  $("add-object").onclick = addObject;
  $("remove-object").onclick = removeObject;
  $("run").onclick = run;
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.onchange = () => { showMethods(); saveSettings(); };
  }
  $("method").onchange = () => { showMethods(); saveSettings(); };
  $("bg-kind").onchange = () => { showSwatch(); saveSettings(); };
  $("bg-colour").oninput = () => { $("bg-kind").value = "colour"; };  // picking a colour chooses it
  for (const control of ["bg-colour", "prior", "plate-kind", "checkpoint", "outputs", "frames-format",
                         "premultiplied"]) {
    $(control).onchange = saveSettings;
  }
  $("accept-mask").onclick = acceptProposal;
  $("reject-mask").onclick = () => rejectProposal();
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
  showSwatch();
  showMethods();
  await refreshJobs();
  if (location.hash.length > 1) await attempt(() => openJob(location.hash.slice(1)));
  document.body.dataset.ready = "true";  // for scripts driving the page (the browser tests)
}

attempt(start);

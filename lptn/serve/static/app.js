// lptn-serve page: send each chosen photo to POST /v1/enhance, show before/after, offer the
// result for download. No external scripts: everything here runs offline.
"use strict";

const MEDIA_EXT = { "image/jpeg": "jpg", "image/png": "png", "image/tiff": "tif", "image/webp": "webp", "image/bmp": "bmp" };
const PARALLEL = 2; // photos in flight at once; the server queues the rest
const MAX_RETRIES = 5; // for 503 (queue full), after the server's Retry-After

const $ = (sel) => document.querySelector(sel);
const input = $("#file-input");
const dropZone = $("#drop-zone");
const strength = $("#strength");
const strengthValue = $("#strength-value");
const format = $("#format");
const reapply = $("#reapply");
const results = $("#results");
const template = $("#card-template");

const cards = []; // {file, element, beforeUrl, afterUrl}
const waiting = [];
let running = 0;

function showStrength() {
  strengthValue.textContent = Math.round(strength.value * 100) + "%";
}

async function loadModelInfo() {
  try {
    const info = await (await fetch("/healthz")).json();
    $("#model-info").textContent =
      `${info.model} (${info.weights}) on ${info.device}, ${info.precision}; ` +
      `up to ${info.max_upload_mb} MB and ${info.max_megapixels} megapixels per photo`;
  } catch (err) {
    $("#model-info").textContent = "The server does not answer; is lptn-serve running?";
  }
}

function addFiles(files) {
  for (const file of files) {
    const element = template.content.firstElementChild.cloneNode(true);
    element.querySelector(".name").textContent = file.name;
    results.appendChild(element);
    const card = { file, element, beforeUrl: URL.createObjectURL(file), afterUrl: null };
    const divider = element.querySelector(".divider");
    divider.addEventListener("input", () => {
      element.querySelector(".compare").style.setProperty("--split", divider.value + "%");
    });
    cards.push(card);
    enqueue(card);
  }
  reapply.disabled = cards.length === 0;
}

function enqueue(card) {
  setState(card, "working", "Waiting…");
  waiting.push(card);
  pump();
}

function pump() {
  while (running < PARALLEL && waiting.length > 0) {
    const card = waiting.shift();
    running += 1;
    enhance(card).finally(() => {
      running -= 1;
      pump();
    });
  }
}

function setState(card, state, message) {
  card.element.dataset.state = state;
  card.element.querySelector(".status").textContent = message;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// A plain-words message for a failed response.
async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (err) {
    // not JSON: fall through
  }
  return `The server answered ${response.status} ${response.statusText}.`;
}

async function enhance(card) {
  const params = new URLSearchParams({ strength: strength.value });
  if (format.value) params.set("format", format.value);
  const form = new FormData();
  form.append("image", card.file, card.file.name);
  setState(card, "working", "Enhancing…");
  const started = performance.now();
  let response;
  for (let attempt = 0; ; attempt++) {
    try {
      response = await fetch("/v1/enhance?" + params, { method: "POST", body: form });
    } catch (err) {
      setState(card, "error", "Cannot reach the server: is lptn-serve still running?");
      return;
    }
    if (response.status !== 503 || attempt >= MAX_RETRIES) break;
    const wait = Number(response.headers.get("Retry-After") || "2");
    setState(card, "working", `The server is busy; trying again in ${wait} s…`);
    await sleep(wait * 1000);
  }
  if (!response.ok) {
    setState(card, "error", "Not enhanced: " + (await errorMessage(response)));
    return;
  }
  const blob = await response.blob();
  if (card.afterUrl) URL.revokeObjectURL(card.afterUrl);
  card.afterUrl = URL.createObjectURL(blob);
  const element = card.element;
  const compare = element.querySelector(".compare");
  const before = element.querySelector(".before");
  const after = element.querySelector(".after");
  let previewFailed = false;
  const noPreview = () => {
    if (!previewFailed) {
      previewFailed = true;
      element.querySelector(".status").textContent +=
        " This browser cannot preview this format; the download works.";
    }
  };
  before.onerror = noPreview;
  after.onerror = noPreview;
  before.src = card.beforeUrl;
  after.src = card.afterUrl;
  compare.hidden = false;
  const link = element.querySelector(".download");
  const stem = card.file.name.replace(/\.[^.]*$/, "");
  const ext = MEDIA_EXT[blob.type] || "img";
  link.href = card.afterUrl;
  link.download = `${stem}-enhanced.${ext}`;
  link.textContent = `Download ${link.download}`;
  link.hidden = false;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  setState(card, "done", `Enhanced at ${Math.round(strength.value * 100)}% in ${seconds} s.`);
}

input.addEventListener("change", () => {
  addFiles(input.files);
  input.value = "";
});
for (const name of ["dragenter", "dragover"]) {
  dropZone.addEventListener(name, (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
}
for (const name of ["dragleave", "drop"]) {
  dropZone.addEventListener(name, () => dropZone.classList.remove("dragging"));
}
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  addFiles(event.dataTransfer.files);
});
strength.addEventListener("input", showStrength);
reapply.addEventListener("click", () => cards.forEach(enqueue));

showStrength();
loadModelInfo();

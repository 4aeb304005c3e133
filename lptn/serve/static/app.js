// lptn-serve page: each chosen photo is previewed through the server (POST /v1/preview: an
// upright 8-bit sRGB PNG, so TIFF and HEIC show too), once as it is and once enhanced at full
// strength. The strength slider blends the two in a canvas, input + S * (enhanced - input),
// without asking the server again; the download asks POST /v1/enhance at that strength, so it
// is the API's answer byte for byte. No external scripts: everything here runs offline.
"use strict";

const MEDIA_EXT = { "image/jpeg": "jpg", "image/png": "png", "image/tiff": "tif", "image/webp": "webp", "image/bmp": "bmp" };
const PARALLEL = 2; // photos in flight at once; the server queues the rest
const MAX_RETRIES = 5; // for 503 (server busy), after the server's Retry-After
const KEY_STORE = "lptn-serve-api-key"; // sessionStorage: forgotten when the tab closes

const $ = (sel) => document.querySelector(sel);
const input = $("#file-input");
const dropZone = $("#drop-zone");
const strength = $("#strength");
const strengthValue = $("#strength-value");
const format = $("#format");
const results = $("#results");
const template = $("#card-template");
const keyForm = $("#key-form");
const keyInput = $("#api-key");
const keyMessage = $("#key-message");

const cards = []; // {file, element, before: ImageData, after: ImageData, downloads: Map}
const waiting = [];
const waitingForKey = [];
let running = 0;
let keyRequired = false;

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

function askForKey(message) {
  keyMessage.textContent = message;
  keyForm.hidden = false;
  keyInput.focus();
}

function showStrength() {
  strengthValue.textContent = Math.round(strength.value * 100) + "%";
}

async function loadModelInfo() {
  try {
    const info = await (await fetch("/healthz")).json();
    $("#model-info").textContent =
      `${info.model} (${info.weights}) on ${info.device}, ${info.precision}; ` +
      `up to ${info.max_upload_mb} MB and ${info.max_megapixels} megapixels per photo`;
    if (info.input_extensions) input.accept = ["image/*", ...info.input_extensions].join(",");
    keyRequired = Boolean(info.api_key_required);
    if (keyRequired && !apiKey()) askForKey("This server needs an API key.");
  } catch (err) {
    $("#model-info").textContent = "The server does not answer; is lptn-serve running?";
  }
}

function addFiles(files) {
  for (const file of files) {
    const element = template.content.firstElementChild.cloneNode(true);
    element.querySelector(".name").textContent = file.name;
    results.appendChild(element);
    const card = { file, element, before: null, after: null, downloads: new Map() };
    const divider = element.querySelector(".divider");
    divider.addEventListener("input", () => {
      element.querySelector(".compare").style.setProperty("--split", divider.value + "%");
    });
    element.querySelector(".download").addEventListener("click", () => download(card));
    cards.push(card);
    enqueue(card);
  }
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
    preview(card).finally(() => {
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

class KeyRefused extends Error {}

// POST the card's photo to `path` with `params`; retries 503 after Retry-After. The response
// (ok or not); KeyRefused for 401, after which the photo waits for a key.
async function send(card, path, params, busyMessage) {
  const form = new FormData();
  form.append("image", card.file, card.file.name);
  const headers = {};
  if (apiKey()) headers["Authorization"] = "Bearer " + apiKey();
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(`${path}?${params}`, { method: "POST", body: form, headers });
    if (response.status === 401) {
      sessionStorage.removeItem(KEY_STORE);
      askForKey(await errorMessage(response));
      throw new KeyRefused();
    }
    if (response.status !== 503 || attempt >= MAX_RETRIES) return response;
    const wait = Number(response.headers.get("Retry-After") || "2");
    setState(card, "working", `The server is busy; trying again in ${wait} s…`);
    await sleep(wait * 1000);
    setState(card, "working", busyMessage);
  }
}

// An ImageData of a PNG preview, or an Error with the server's words.
async function previewPixels(card, value, message) {
  const response = await send(card, "/v1/preview", new URLSearchParams({ strength: value }), message);
  if (!response.ok) throw new Error(await errorMessage(response));
  const bitmap = await createImageBitmap(await response.blob());
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return context.getImageData(0, 0, canvas.width, canvas.height);
}

async function preview(card) {
  const started = performance.now();
  const element = card.element;
  try {
    setState(card, "working", "Reading the photo…");
    card.before = await previewPixels(card, "0", "Reading the photo…");
    const before = element.querySelector(".before");
    before.width = card.before.width;
    before.height = card.before.height;
    before.getContext("2d").putImageData(card.before, 0, 0);
    setState(card, "working", "Enhancing…");
    card.after = await previewPixels(card, "1", "Enhancing…");
  } catch (err) {
    if (err instanceof KeyRefused) {
      setState(card, "working", "Waiting for the API key…");
      waitingForKey.push(card);
    } else if (err instanceof TypeError) {
      setState(card, "error", "Cannot reach the server: is lptn-serve still running?");
    } else {
      setState(card, "error", "Not enhanced: " + err.message);
    }
    return;
  }
  drawBlend(card);
  element.querySelector(".compare").hidden = false;
  element.querySelector(".download").hidden = false;
  showDownload(card);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  setState(card, "done", `Enhanced in ${seconds} s; the strength slider blends live.`);
}

// The after canvas: input + S * (enhanced - input), per channel, from the two previews.
function drawBlend(card) {
  if (!card.before || !card.after) return;
  const s = Number(strength.value);
  const a = card.before.data;
  const b = card.after.data;
  const out = new ImageData(card.before.width, card.before.height);
  const o = out.data;
  for (let i = 0; i < a.length; i++) o[i] = a[i] + s * (b[i] - a[i]);
  const canvas = card.element.querySelector(".after");
  canvas.width = out.width;
  canvas.height = out.height;
  canvas.getContext("2d").putImageData(out, 0, 0);
}

function showDownload(card) {
  const button = card.element.querySelector(".download");
  button.textContent = `Download at ${Math.round(strength.value * 100)}%`;
}

// The API's answer at the chosen strength and format, saved under the photo's name.
async function download(card) {
  const params = new URLSearchParams({ strength: strength.value });
  if (format.value) params.set("format", format.value);
  const key = params.toString();
  const button = card.element.querySelector(".download");
  let saved = card.downloads.get(key);
  if (!saved) {
    button.disabled = true;
    const previous = card.element.querySelector(".status").textContent;
    setState(card, "working", `Making the download at ${Math.round(strength.value * 100)}%…`);
    try {
      const response = await send(card, "/v1/enhance", params, "Making the download…");
      if (!response.ok) {
        setState(card, "done", "Not downloaded: " + (await errorMessage(response)));
        return;
      }
      const blob = await response.blob();
      const stem = card.file.name.replace(/\.[^.]*$/, "");
      saved = { url: URL.createObjectURL(blob), name: `${stem}-enhanced.${MEDIA_EXT[blob.type] || "img"}` };
      card.downloads.set(key, saved);
      setState(card, "done", previous);
    } catch (err) {
      setState(card, "done", err instanceof KeyRefused ? "Enter the API key, then download again." : "Cannot reach the server.");
      return;
    } finally {
      button.disabled = false;
    }
  }
  const link = document.createElement("a");
  link.href = saved.url;
  link.download = saved.name;
  card.element.appendChild(link);
  link.click();
  link.remove();
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
strength.addEventListener("input", () => {
  showStrength();
  for (const card of cards) {
    drawBlend(card);
    showDownload(card);
  }
});
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  keyInput.value = "";
  keyForm.hidden = true;
  waitingForKey.splice(0).forEach(enqueue);
});

showStrength();
loadModelInfo();

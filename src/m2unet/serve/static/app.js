// m2unet serve: the page. No framework, no build step, nothing from the internet.
// Each photograph goes to POST v1/segment; the binary map and the overlay are redrawn here, in the browser, from the
// 8-bit probability map whenever the threshold slider moves (a pixel is a vessel when probability >= threshold).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = { token: sessionStorage.getItem("m2unet-token") || "", info: null, queue: Promise.resolve() };

function say(text, isError = false) {
  const message = $("#message");
  message.textContent = text;
  message.classList.toggle("error", isError);
}

async function api(path, options = {}) {
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  const response = await fetch(path, { ...options, headers });
  if (response.ok) return response;
  let reason = `HTTP ${response.status}`;
  try { reason = (await response.json()).error || reason; } catch (_) { /* not JSON */ }
  if (response.status === 401) {
    $("#token-box").classList.remove("hidden");
    $("#token").focus();
  }
  throw new Error(reason);
}

async function loadInfo() {
  try {
    state.info = await (await api("v1/models")).json();
    const models = state.info.models.map((m) => `${m.name} (threshold ${m.threshold.toFixed(3)})`).join(", ");
    $("#server").textContent = `backend ${state.info.backend} · models ${models} · default ${state.info.default} · ` +
      `limits ${(state.info.limits.upload_bytes / 1048576).toFixed(0)} MB, ${(state.info.limits.pixels / 1e6).toFixed(0)} Mpx` +
      (state.info.measure ? " · measurements on" : "");
    addServedModels(state.info.models);
    $("#model").value = state.info.default;
    say("");
  } catch (error) {
    $("#server").textContent = "";
    say(error.message, true);
  }
}

// Models the server was started with (--weights, e.g. calibrated to one camera) join the built-in ones.
function addServedModels(models) {
  const select = $("#model");
  const known = new Set([...select.options].map((option) => option.value));
  for (const model of models.filter((m) => !known.has(m.name))) {
    const option = document.createElement("option");
    const fitted = model.calibration ? `, calibrated on ${model.calibration.photographs} photographs` : "";
    option.value = model.name;
    option.textContent = `${model.name} (${model.file}${fitted})`;
    select.append(option);
  }
}

function pixelsOf(image) {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth || image.width;
  canvas.height = image.naturalHeight || image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  return context.getImageData(0, 0, canvas.width, canvas.height).data;
}

async function loadImage(src) {
  const image = new Image();
  image.src = src;
  await image.decode();
  return image;
}

// The photograph's pixels, when the browser can decode the file (not TIFF): for the overlay.
async function photoPixels(file, width, height) {
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    if (bitmap.width !== width || bitmap.height !== height) return null;
    return pixelsOf(bitmap);
  } catch (_) {
    return null;
  }
}

// Same picture as m2unet.inference.pipeline.overlay: dimmed to a third outside the FOV, vessels = pixel/3 + green.
function draw(result) {
  const { width, height, probability, fov, photo } = result;
  const cut = Number(result.slider.value);
  const binary = new ImageData(width, height);
  const overlay = photo ? new ImageData(width, height) : null;
  let count = 0;
  for (let i = 0, p = 0; p < width * height; p++, i += 4) {
    const vessel = probability[i] / 255 >= cut;
    count += vessel;
    const value = vessel ? 255 : 0;
    binary.data[i] = binary.data[i + 1] = binary.data[i + 2] = value;
    binary.data[i + 3] = 255;
    if (overlay) {
      for (let c = 0; c < 3; c++) {
        let v = photo[i + c];
        if (!fov[i]) v = Math.floor(v / 3);
        if (vessel) v = Math.floor(v / 3) + (c === 1 ? 170 : 0);
        overlay.data[i + c] = v;
      }
      overlay.data[i + 3] = 255;
    }
  }
  result.binaryCanvas.getContext("2d").putImageData(binary, 0, 0);
  if (overlay) result.overlayCanvas.getContext("2d").putImageData(overlay, 0, 0);
  result.output.textContent = cut.toFixed(3);
  result.count.textContent = `${count.toLocaleString()} vessel pixels (${(100 * count / Math.max(1, result.fovPixels)).toFixed(1)} % of the FOV)`;
  result.section.dataset.vesselPixels = String(count);
}

function stem(name) {
  return name.replace(/\.[^.]*$/, "") || "image";
}

function canvasBlobUrl(canvas) {
  return new Promise((resolve) => canvas.toBlob((blob) => resolve(URL.createObjectURL(blob)), "image/png"));
}

function pngBlob(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: "image/png" });
}

function jsonUrl(object) {
  return URL.createObjectURL(new Blob([JSON.stringify(object, null, 1)], { type: "application/json" }));
}

async function show(section, file, answer) {
  const result = {
    section, width: answer.width, height: answer.height, answer,
    slider: $(".threshold", section), output: $(".threshold-value", section), count: $(".vessel-count", section),
    binaryCanvas: $("canvas.binary", section), overlayCanvas: $("canvas.overlay", section),
  };
  const probabilityImage = await loadImage("data:image/png;base64," + answer.probability_png);
  $("img.probability", section).src = probabilityImage.src;
  result.probability = pixelsOf(probabilityImage);
  result.fov = pixelsOf(await loadImage("data:image/png;base64," + answer.fov_png));
  result.fovPixels = 0;
  for (let i = 0; i < result.fov.length; i += 4) result.fovPixels += result.fov[i] > 0;
  result.photo = await photoPixels(file, answer.width, answer.height);
  const photo = $("img.photo", section);
  if (result.photo) {
    photo.src = URL.createObjectURL(file);
  } else {
    photo.alt = "this browser cannot display the file's format; the overlay shows it";
  }
  for (const canvas of [result.binaryCanvas, result.overlayCanvas]) { canvas.width = answer.width; canvas.height = answer.height; }
  if (!result.photo && answer.overlay_png) {  // the server's overlay, at the stored threshold only
    result.overlayCanvas.getContext("2d").drawImage(await loadImage("data:image/png;base64," + answer.overlay_png), 0, 0);
  }
  const t = answer.timings_ms;
  $(".status", section).textContent = `${answer.width}×${answer.height} px · model ${answer.model} (${answer.backend}${answer.tta ? ", TTA" : ""}) · ` +
    `stored threshold ${answer.threshold.toFixed(3)} · FOV ${answer.fov_width} px wide` +
    `${answer.run_fov_diameter ? `, run at ${answer.run_fov_diameter} px${answer.search_diameter ? " (searched)" : ""}` : ""} · ` +
    `decode ${t.decode} ms, FOV ${t.fov} ms, ${t.model >= 1 ? `model loading ${t.model} ms, ` : ""}segment ${t.segment} ms, encode ${t.encode} ms`;
  if (answer.review) {  // m2unet.inference.review: a map unlike those of well-segmented photographs
    const review = $(".review", section);
    review.textContent = `Look at this map before using it: ${answer.review}.`;
    review.classList.remove("hidden");
  }
  result.slider.value = answer.threshold;
  let pending = false;
  result.slider.addEventListener("input", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(result); });
  });
  $(".reset", section).addEventListener("click", () => { result.slider.value = answer.threshold; draw(result); });
  draw(result);
  $(".slider", section).classList.remove("hidden");
  offerDownloads(result, stem(file.name));
  if (state.info && state.info.measure) offerMeasurements(result, file.name);
  section.classList.add("done");
}

function offerDownloads(result, name) {
  const section = result.section;
  $(".dl-probability", section).href = "data:image/png;base64," + result.answer.probability_png;
  $(".dl-probability", section).download = `${name}_probability.png`;
  for (const [link, canvas, suffix] of [[".dl-binary", result.binaryCanvas, "vessels"], [".dl-overlay", result.overlayCanvas, "overlay"]]) {
    const anchor = $(link, section);
    anchor.download = `${name}_${suffix}.png`;
    anchor.addEventListener("click", async (event) => {  // the picture at the slider's threshold now
      if (anchor.dataset.ready) { delete anchor.dataset.ready; return; }
      event.preventDefault();
      anchor.href = await canvasBlobUrl(canvas);
      anchor.dataset.ready = "1";
      anchor.click();
    });
  }
  const { probability_png, vessels_png, fov_png, overlay_png, ...facts } = result.answer;
  $(".dl-json", section).href = jsonUrl(facts);
  $(".dl-json", section).download = `${name}.json`;
  $(".downloads", section).classList.remove("hidden");
}

function csv(rows) {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cell = (value) => {
    const text = value === null || value === undefined ? "" : String(value);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [columns.join(","), ...rows.map((row) => columns.map((c) => cell(row[c])).join(","))].join("\n") + "\n";
}

function offerMeasurements(result, fileName) {
  const section = result.section;
  const box = $(".measurements", section);
  box.classList.remove("hidden");
  const run = async () => {
    $(".measure-status", section).textContent = `measuring at threshold ${Number(result.slider.value).toFixed(3)}…`;
    try {
      const form = new FormData();
      form.append("vessels", await new Promise((ok) => result.binaryCanvas.toBlob(ok, "image/png")), `${stem(fileName)}_vessels.png`);
      form.append("fov", pngBlob(result.answer.fov_png), `${stem(fileName)}_fov.png`);
      const measured = await (await api("v1/measure", { method: "POST", body: form })).json();
      showMeasurements(section, measured, fileName, Number(result.slider.value));
    } catch (error) {
      $(".measure-status", section).textContent = error.message;
    }
  };
  $(".measure", section).addEventListener("click", run);
  run();
}

function showMeasurements(section, measured, fileName, threshold) {
  const table = $("table.summary", section);
  table.replaceChildren();
  const summary = { ...(measured.summary || {}), image: fileName, threshold: threshold };
  const entries = Object.entries(summary);
  for (let start = 0; start < entries.length; start += 4) {  // four measures per row
    const row = table.insertRow();
    for (const [key, value] of entries.slice(start, start + 4)) {
      row.insertCell().textContent = key;
      const cell = row.insertCell();
      cell.className = "value";
      cell.textContent = typeof value === "number" ? (Number.isInteger(value) ? value : value.toPrecision(5)) : String(value ?? "");
    }
  }
  $(".measure-status", section).textContent = `${(measured.segments || []).length} segments, ${(measured.junctions || []).length} junctions · ` +
    `${measured.timings_ms.measure} ms`;
  const name = stem(fileName);
  const csvLink = $(".dl-csv", section);
  csvLink.href = URL.createObjectURL(new Blob([csv([summary])], { type: "text/csv" }));
  csvLink.download = `${name}_measurements.csv`;
  const jsonLink = $(".dl-measure-json", section);
  jsonLink.href = jsonUrl({ image: fileName, threshold, ...measured });
  jsonLink.download = `${name}_measurements.json`;
  $(".measure-downloads", section).classList.remove("hidden");
}

async function segmentFile(file) {
  const section = $("#result-template").content.firstElementChild.cloneNode(true);
  $(".name", section).textContent = file.name;
  $("#results").prepend(section);
  try {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("model", $("#model").value);
    form.append("tta", $("#tta").checked ? "true" : "false");
    form.append("search_diameter", $("#search-diameter").checked && $("#model").value === "auto" ? "true" : "false");  // per-dataset models run as they are
    form.append("overlay", "true");
    const answer = await (await api("v1/segment", { method: "POST", body: form })).json();
    await show(section, file, answer);
  } catch (error) {
    $(".status", section).textContent = error.message;
    section.classList.add("failed");
  }
}

function addFiles(files) {
  for (const file of files) state.queue = state.queue.then(() => segmentFile(file));  // one at a time, in order
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token").value = state.token;
  if (state.token) $("#token-box").classList.remove("hidden");
  $("#token").addEventListener("change", () => {
    state.token = $("#token").value.trim();
    sessionStorage.setItem("m2unet-token", state.token);
    loadInfo();
  });
  $("#files").addEventListener("change", (event) => { addFiles([...event.target.files]); event.target.value = ""; });
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles([...event.dataTransfer.files]);
  });
  loadInfo();
});

// The latent-space explorer: decodes z -> H tanh -> rows x columns sigmoid in plain JavaScript.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("explorer-data").textContent);
  function bytesOf(b64) {
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  }
  function floats(b64) {
    return new Float32Array(bytesOf(b64).buffer);
  }
  const D = data.latentDim, H = data.hidden, ROWS = data.rows, COLS = data.cols, P = ROWS * COLS;
  const w1 = floats(data.w1), b1 = floats(data.b1), w2 = floats(data.w2), b2 = floats(data.b2);
  const points = floats(data.points);
  const labels = new Uint16Array(bytesOf(data.labels).buffer);  // little-endian uint16: up to 999 classes
  const palette = data.colours, classNames = data.classNames;
  const colour = (label) => palette[label % palette.length];

  // Bernoulli means of p(x|z), computed in double precision from the float32 weights.
  function decode(z) {
    const hidden = new Float64Array(H);
    for (let j = 0; j < H; j++) {
      let s = b1[j];
      for (let d = 0; d < D; d++) s += z[d] * w1[d * H + j];
      hidden[j] = Math.tanh(s);
    }
    const out = new Float64Array(P);
    for (let p = 0; p < P; p++) out[p] = b2[p];
    for (let j = 0; j < H; j++) {
      const h = hidden[j], row = j * P;
      for (let p = 0; p < P; p++) out[p] += h * w2[row + p];
    }
    for (let p = 0; p < P; p++) out[p] = 1 / (1 + Math.exp(-out[p]));
    return out;
  }

  // The plane shown: the training means' range, padded, the same scale on both axes.
  let lo = [Infinity, Infinity], hi = [-Infinity, -Infinity];
  for (let i = 0; i < labels.length; i++) {
    for (let d = 0; d < 2; d++) {
      lo[d] = Math.min(lo[d], points[2 * i + d]); hi[d] = Math.max(hi[d], points[2 * i + d]);
    }
  }
  const centre = [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2];
  const half = 0.55 * Math.max(hi[0] - lo[0], hi[1] - lo[1], 1e-3);
  const canvas = document.getElementById("latent-canvas");
  const ctx = canvas.getContext("2d");
  const size = canvas.width;
  function zToCanvas(z) {
    return [(z[0] - centre[0] + half) / (2 * half) * size, (centre[1] + half - z[1]) / (2 * half) * size];
  }
  function canvasToZ(x, y) {
    return [centre[0] - half + (x / size) * 2 * half, centre[1] + half - (y / size) * 2 * half];
  }
  let background = null;
  function drawPlane() {
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, size, size);
    ctx.strokeStyle = "#ddd"; ctx.lineWidth = 1;
    for (let t = Math.ceil(centre[0] - half); t <= centre[0] + half; t++) {
      const [x] = zToCanvas([t, 0]); ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, size); ctx.stroke();
    }
    for (let t = Math.ceil(centre[1] - half); t <= centre[1] + half; t++) {
      const [, y] = zToCanvas([0, t]); ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(size, y); ctx.stroke();
    }
    ctx.fillStyle = "#888"; ctx.font = "10px sans-serif";
    for (let t = Math.ceil(centre[0] - half); t <= centre[0] + half; t++) {
      const [x] = zToCanvas([t, 0]); ctx.fillText(String(t), x + 2, size - 18);
    }
    for (let t = Math.ceil(centre[1] - half); t <= centre[1] + half; t++) {
      const [, y] = zToCanvas([0, t]); ctx.fillText(String(t), 3, y - 2);
    }
    ctx.globalAlpha = 0.55;
    for (let i = 0; i < labels.length; i++) {
      const [x, y] = zToCanvas([points[2 * i], points[2 * i + 1]]);
      ctx.fillStyle = colour(labels[i]); ctx.fillRect(x - 1.2, y - 1.2, 2.4, 2.4);
    }
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#333"; ctx.font = "12px sans-serif";
    ctx.fillText("z1 →", size - 40, size - 6); ctx.fillText("↑ z2", 4, 14);
    background = ctx.getImageData(0, 0, size, size);
  }
  function drawImage(target, pixels, offsetX) {
    const c = target.getContext("2d");
    const image = c.createImageData(COLS, ROWS);
    for (let p = 0; p < P; p++) {
      const v = Math.round(255 * pixels[p]);
      image.data[4 * p] = v; image.data[4 * p + 1] = v; image.data[4 * p + 2] = v; image.data[4 * p + 3] = 255;
    }
    c.putImageData(image, offsetX || 0, 0);
  }
  const decodedCanvas = document.getElementById("decoded-canvas");
  const readout = document.getElementById("z-readout");
  const strip = document.getElementById("strip-canvas");
  const state = { lastZ: null, lastDecoded: null, clicks: [], strip: null };

  function eventToZ(event) {
    const rect = canvas.getBoundingClientRect();
    return canvasToZ((event.clientX - rect.left) * size / rect.width, (event.clientY - rect.top) * size / rect.height);
  }
  function show(z) {
    state.lastZ = z;
    state.lastDecoded = decode(z);
    drawImage(decodedCanvas, state.lastDecoded);
    readout.textContent = "z = (" + z[0].toFixed(3) + ", " + z[1].toFixed(3) + ")";
  }
  function mark(z, colour) {
    const [x, y] = zToCanvas(z);
    ctx.strokeStyle = colour; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.stroke();
  }
  canvas.addEventListener("pointermove", (event) => show(eventToZ(event)));
  canvas.addEventListener("click", (event) => {
    const z = eventToZ(event);
    state.clicks.push(z);
    if (state.clicks.length > 2) state.clicks = [z];
    ctx.putImageData(background, 0, 0);
    state.clicks.forEach((c) => mark(c, "#d00"));
    if (state.clicks.length === 2) {
      const [a, b] = state.clicks, steps = 10;
      state.strip = [];
      for (let s = 0; s < steps; s++) {
        const alpha = 1 - s / (steps - 1);  // alpha * z_a + (1 - alpha) * z_b, from z_a to z_b
        const zs = [alpha * a[0] + (1 - alpha) * b[0], alpha * a[1] + (1 - alpha) * b[1]];
        const pixels = decode(zs);
        state.strip.push(pixels);
        drawImage(strip, pixels, COLS * s);
      }
      ctx.strokeStyle = "#d00"; ctx.setLineDash([4, 3]); ctx.beginPath();
      ctx.moveTo(...zToCanvas(a)); ctx.lineTo(...zToCanvas(b)); ctx.stroke(); ctx.setLineDash([]);
      document.getElementById("strip-note").textContent =
        "Interpolation from (" + a.map((v) => v.toFixed(2)).join(", ") + ") to (" +
        b.map((v) => v.toFixed(2)).join(", ") + "), 10 steps.";
    } else {
      document.getElementById("strip-note").textContent = "Interpolation: click a second point.";
    }
  });
  const legend = document.getElementById("legend");
  classNames.forEach((name, label) => {
    const entry = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.style.color = colour(label); swatch.textContent = "\u25A0 ";
    entry.append(swatch, name + "  ");
    legend.append(entry);
  });
  drawPlane();
  show([0, 0]);
  // For tests and the curious: the decoder and the plane's mapping.
  window.aevbExplorer = { decode, zToCanvas, canvasToZ, state, size };
})();

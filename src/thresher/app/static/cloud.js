// A 3D point cloud drawn on a 2D canvas: orbit by dragging, zoom with the wheel, double-click
// to reset; hover names the nearest point within PICK_RADIUS pixels and a click (not a drag)
// picks it. Replaces plotly's WebGL scatter3d in the app: on a machine without a GPU
// (software GL) plotly needed 1.7-2.2 s to parse its 4.8 MB and 1-2 s to build its meshes
// before the first frame; this draws 50,000 points in tens of milliseconds
// (benchmarks/bench_app_render.py).
"use strict";

const PICK_RADIUS = 8;  // CSS pixels: the hover label and the click reach this far

class PointCloud3D {
  constructor(canvas, { tooltip, legend, onPick, onRender }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.tooltip = tooltip;
    this.legend = legend;
    this.onPick = onPick;
    this.onRender = onRender;
    this.n = 0;
    this.hidden = new Set();
    this.lines = false;
    this.selection = null;  // { index, others: [rows] }
    this.resetView();
    this._frame = null;
    this._bind();
  }

  resetView() {
    this.yaw = 0.6;
    this.pitch = 0.35;
    this.zoom = 1;
  }

  // coords: Float32Array (3n); codes: Int array (n) into `categories` ({code, name, colour});
  // text(i): the hover label; rep: Int32Array (n), the row each point duplicates or -1
  setData({ coords, n, codes, categories, text, rep }) {
    this.coords = coords;
    this.n = n;
    this.codes = codes;
    this.text = text;
    this.rep = rep || null;
    const counts = new Map();
    for (let i = 0; i < n; i++) counts.set(codes[i], (counts.get(codes[i]) ?? 0) + 1);
    this.categories = categories.filter((c) => counts.has(c.code)).map((c) => ({ ...c, count: counts.get(c.code) }));
    this.rows = new Map(this.categories.map((c) => [c.code, []]));
    for (let i = 0; i < n; i++) this.rows.get(codes[i]).push(i);
    for (const [code, rows] of this.rows) this.rows.set(code, Int32Array.from(rows));
    this.hidden = new Set([...this.hidden].filter((code) => counts.has(code)));
    // centre on the mean, scale by a high percentile of the radius (a few far outliers must
    // not shrink the rest to a dot)
    const mean = [0, 0, 0];
    for (let i = 0; i < n; i++) for (let d = 0; d < 3; d++) mean[d] += coords[3 * i + d] / n;
    const radii = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      radii[i] = Math.hypot(coords[3 * i] - mean[0], coords[3 * i + 1] - mean[1], coords[3 * i + 2] - mean[2]);
    }
    const sorted = radii.slice().sort();
    this.centre = mean;
    this.radius = sorted[Math.min(n - 1, Math.floor(0.98 * n))] || 1;
    this.sx = new Float32Array(n);
    this.sy = new Float32Array(n);
    this._legend();
    this.render();
  }

  setLines(on) { this.lines = on; this.render(); }

  setSelection(index, others) { this.selection = index == null ? null : { index, others }; this.render(); }

  _legend() {
    if (!this.legend) return;
    this.legend.replaceChildren(...this.categories.map((c) => {
      const entry = document.createElement("button");
      entry.type = "button";
      entry.className = "entry" + (this.hidden.has(c.code) ? " off" : "");
      entry.title = "show or hide";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = c.colour;
      const label = document.createElement("span");
      label.className = "legendtext";
      label.textContent = `${c.name} (${c.count})`;
      entry.append(swatch, label);
      entry.addEventListener("click", () => {
        if (this.hidden.has(c.code)) this.hidden.delete(c.code); else this.hidden.add(c.code);
        this._legend();
        this.render();
      });
      return entry;
    }));
  }

  _size() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, this.canvas.clientWidth), h = Math.max(1, this.canvas.clientHeight);
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
    }
    return { w, h, dpr };
  }

  // screen position (CSS pixels, relative to the canvas) of every point, with mild perspective
  _project(w, h) {
    const cy = Math.cos(this.yaw), sy = Math.sin(this.yaw), cp = Math.cos(this.pitch), sp = Math.sin(this.pitch);
    const scale = 0.42 * Math.min(w, h) * this.zoom / this.radius;
    const [mx, my, mz] = this.centre;
    const c = this.coords;
    for (let i = 0; i < this.n; i++) {
      const x = c[3 * i] - mx, y = c[3 * i + 1] - my, z = c[3 * i + 2] - mz;
      const x1 = cy * x + sy * z, z1 = -sy * x + cy * z;  // yaw about the vertical axis
      const y2 = cp * y - sp * z1, z2 = sp * y + cp * z1;  // pitch about the horizontal axis
      const f = 4 / (4 - z2 / this.radius);  // nearer points spread a little wider
      this.sx[i] = w / 2 + scale * f * x1;
      this.sy[i] = h / 2 - scale * f * y2;
    }
  }

  render() {
    if (this._frame == null) this._frame = requestAnimationFrame(() => { this._frame = null; this.draw(); });
  }

  draw() {
    if (!this.n) return;
    const { w, h, dpr } = this._size();
    const ctx = this.ctx;
    this._project(w, h);
    this._points(dpr);  // the points, written straight into the pixels
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (this.lines && this.rep) {
      ctx.strokeStyle = "rgba(31, 119, 180, 0.45)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let i = 0; i < this.n; i++) {
        const r = this.rep[i];
        if (r < 0 || this.hidden.has(this.codes[i])) continue;
        ctx.moveTo(this.sx[i], this.sy[i]);
        ctx.lineTo(this.sx[r], this.sy[r]);
      }
      ctx.stroke();
    }
    if (this.selection) this._drawSelection(ctx);
    this._gizmo(ctx, h);
    if (this.onRender) this.onRender();
  }

  // Square markers written into an ImageData buffer: about 30x faster than one fillRect per
  // point on a software canvas (50,000 points: ~65 ms a frame with fillRect).
  _points(dpr) {
    const W = this.canvas.width, H = this.canvas.height;
    if (!this._image || this._image.width !== W || this._image.height !== H) {
      this._image = this.ctx.createImageData(W, H);
      this._pixels = new Uint32Array(this._image.data.buffer);
    }
    const px = this._pixels;
    px.fill(0xffffffff);
    const size = Math.max(1, Math.round((this.n > 20000 ? 2 : 3) * dpr));
    const half = size >> 1;
    for (const c of this.categories) {  // in legend order: the removed groups land on top
      if (this.hidden.has(c.code)) continue;
      const colour = rgba32(c.colour);
      for (const i of this.rows.get(c.code)) {
        const x0 = Math.round(this.sx[i] * dpr) - half, y0 = Math.round(this.sy[i] * dpr) - half;
        if (x0 < 0 || y0 < 0 || x0 + size > W || y0 + size > H) continue;
        for (let dy = 0; dy < size; dy++) px.fill(colour, (y0 + dy) * W + x0, (y0 + dy) * W + x0 + size);
      }
    }
    this.ctx.putImageData(this._image, 0, 0);
  }

  _drawSelection(ctx) {
    const { index, others } = this.selection;
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 2;
    ctx.beginPath();
    for (const o of others) { ctx.moveTo(this.sx[index], this.sy[index]); ctx.lineTo(this.sx[o], this.sy[o]); }
    ctx.stroke();
    ctx.fillStyle = "#000";
    for (const o of others) ctx.fillRect(this.sx[o] - 3, this.sy[o] - 3, 6, 6);
    const x = this.sx[index], y = this.sy[index];
    ctx.beginPath();
    ctx.moveTo(x, y - 7); ctx.lineTo(x + 7, y); ctx.lineTo(x, y + 7); ctx.lineTo(x - 7, y); ctx.closePath();
    ctx.fill();
  }

  _gizmo(ctx, h) {  // which way the axes point
    const cy = Math.cos(this.yaw), sy = Math.sin(this.yaw), cp = Math.cos(this.pitch), sp = Math.sin(this.pitch);
    const axes = [["x", [1, 0, 0], "#c62828"], ["y", [0, 1, 0], "#2e7d32"], ["z", [0, 0, 1], "#1565c0"]];
    const ox = 34, oy = h - 34;
    ctx.lineWidth = 2;
    ctx.font = "11px system-ui, sans-serif";
    for (const [name, [x, y, z], colour] of axes) {
      const x1 = cy * x + sy * z, z1 = -sy * x + cy * z, y2 = cp * y - sp * z1;
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.beginPath(); ctx.moveTo(ox, oy); ctx.lineTo(ox + 22 * x1, oy - 22 * y2); ctx.stroke();
      ctx.fillText(name, ox + 27 * x1 - 3, oy - 27 * y2 + 4);
    }
  }

  // the visible point nearest to (x, y) (CSS pixels relative to the canvas) within the radius
  nearest(x, y, radius = PICK_RADIUS) {
    let best = null, bestD = radius * radius;
    for (const c of this.categories) {
      if (this.hidden.has(c.code)) continue;
      for (const i of this.rows.get(c.code)) {
        const dx = this.sx[i] - x, dy = this.sy[i] - y, d = dx * dx + dy * dy;
        if (d <= bestD) { bestD = d; best = i; }
      }
    }
    return best;
  }

  // where row i is on the page (client coordinates), for tests and keyboard users
  screenOf(i) {
    const box = this.canvas.getBoundingClientRect();
    this._project(Math.max(1, this.canvas.clientWidth), Math.max(1, this.canvas.clientHeight));
    return [box.left + this.sx[i], box.top + this.sy[i]];
  }

  _bind() {
    const cv = this.canvas;
    let down = null;
    const local = (ev) => { const b = cv.getBoundingClientRect(); return [ev.clientX - b.left, ev.clientY - b.top]; };
    cv.addEventListener("pointerdown", (ev) => {
      down = { x: ev.clientX, y: ev.clientY, yaw: this.yaw, pitch: this.pitch, moved: false };
      cv.setPointerCapture?.(ev.pointerId);
    });
    cv.addEventListener("pointermove", (ev) => {
      if (down) {
        const dx = ev.clientX - down.x, dy = ev.clientY - down.y;
        if (Math.hypot(dx, dy) > 4) down.moved = true;
        if (down.moved) {
          this.yaw = down.yaw + dx * 0.01;
          this.pitch = Math.max(-1.5, Math.min(1.5, down.pitch + dy * 0.01));
          this._hideTip();
          this.render();
        }
        return;
      }
      const [x, y] = local(ev);
      const i = this.nearest(x, y);
      cv.style.cursor = i == null ? "grab" : "pointer";
      if (i == null) this._hideTip(); else this._showTip(i, x, y);
    });
    cv.addEventListener("pointerup", (ev) => {
      const was = down;
      down = null;
      if (!was || was.moved) return;  // a drag rotates, it picks nothing
      const [x, y] = local(ev);
      const i = this.nearest(x, y);
      if (i != null && this.onPick) this.onPick(i);
    });
    cv.addEventListener("pointerleave", () => { if (!down) this._hideTip(); });
    cv.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      this.zoom = Math.max(0.2, Math.min(50, this.zoom * Math.exp(-ev.deltaY * 0.0015)));
      this.render();
    }, { passive: false });
    cv.addEventListener("dblclick", () => { this.resetView(); this.render(); });
    if (window.ResizeObserver) new ResizeObserver(() => this.render()).observe(cv);
  }

  _showTip(i, x, y) {
    if (!this.tooltip) return;
    this.tooltip.textContent = this.text(i);
    this.tooltip.style.left = `${x + 12}px`;
    this.tooltip.style.top = `${y + 12}px`;
    this.tooltip.hidden = false;
  }

  _hideTip() { if (this.tooltip) this.tooltip.hidden = true; }
}

// "#rrggbb" -> the 32-bit pixel of that colour, opaque, in the platform's byte order
function rgba32(hex) {
  const v = parseInt(hex.slice(1), 16);
  const bytes = new Uint8ClampedArray([(v >> 16) & 255, (v >> 8) & 255, v & 255, 255]);
  return new Uint32Array(bytes.buffer)[0];
}

window.PointCloud3D = PointCloud3D;

// Studio effects, drawn in the broadcaster's browser (the node does nothing more): colour
// filters, a soft focus, a text caption, a logo and a picture-in-picture of a second
// source (a screen or another camera). With any of them on, the camera's frames are read
// (MediaStreamTrackProcessor where the browser has it, else a video element's
// requestVideoFrameCallback), drawn with the effects onto a canvas of the camera's size,
// and the canvas's captured track replaces the published one (RTCRtpSender.replaceTrack:
// no renegotiation, the simulcast layers stay). With none on, the camera's own track goes
// back and the canvas stops: an idle studio costs nothing.
//
// "Soft focus" blurs the whole picture. A background blur that keeps the person sharp
// needs a segmentation model, and none ships with Cascade: the control says what it does.

const FILTERS = {
  none: "",
  grayscale: "grayscale(1)",
  sepia: "sepia(1)",
  warm: "sepia(0.35) saturate(1.4) hue-rotate(-12deg)",
  cool: "saturate(1.1) hue-rotate(18deg) brightness(1.05)",
  vivid: "saturate(1.8) contrast(1.1)",
};

/** Calls `draw(frame, width, height)` for each frame of `track` until `state.stopped`. */
function readFrames(track, state, draw) {
  if ("MediaStreamTrackProcessor" in window) {
    const reader = new window.MediaStreamTrackProcessor({ track }).readable.getReader();
    state.cancel = () => reader.cancel().catch(() => {});
    (async () => {
      while (!state.stopped) {
        const { value, done } = await reader.read().catch(() => ({ done: true }));
        if (done) return;
        try { draw(value, value.displayWidth, value.displayHeight); } finally { value.close(); }
      }
    })();
    return;
  }
  const video = playing(track);
  state.cancel = () => { video.srcObject = null; };
  const step = () => {
    if (state.stopped) return;
    if (video.videoWidth) draw(video, video.videoWidth, video.videoHeight);
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
}

/** A muted, detached video element playing `track` (something `drawImage` can take). */
function playing(track) {
  const video = document.createElement("video");
  video.muted = true; video.playsInline = true;
  video.srcObject = new MediaStream([track]);
  video.play().catch(() => {});
  return video;
}

export class Effects {
  constructor() {
    /** What is chosen: a key of FILTERS, soft focus, caption, logo (an ImageBitmap). */
    this.filter = "none"; this.soft = false; this.text = ""; this.logo = null;
    /** The picture-in-picture's stream and its playing element, when one is on. */
    this.pip = null;
    this.camera = null; this.sender = null; this.pipeline = null;
    /** Frames drawn with effects (what a test or a status line reads). */
    this.frames = 0;
    /** Told the track to show whenever it changes (the preview). */
    this.onTrack = () => {};
  }

  get active() {
    return this.filter !== "none" || this.soft || !!this.text || !!this.logo || !!this.pip;
  }

  /** The track viewers get now: the canvas's with effects, else the camera's. */
  get track() { return this.pipeline?.track ?? this.camera; }

  /** The camera's video track (before going live, or again after a restart). */
  async setCamera(track) {
    this.stopPipeline();
    this.camera = track;
    await this.apply();
  }

  /** The published video sender: effects go to viewers through it. */
  async setSender(sender) {
    this.sender = sender;
    if (sender && sender.track !== this.track) await sender.replaceTrack(this.track);
  }

  async setPip(stream) {
    this.pip?.stream.getTracks().forEach((t) => t.stop());
    this.pip = stream ? { stream, video: playing(stream.getVideoTracks()[0]) } : null;
    // The second source ending (a screen share stopped from the browser's bar) ends it here.
    stream?.getVideoTracks()[0]?.addEventListener("ended", () => {
      if (this.pip?.stream === stream) this.setPip(null);
    });
    await this.apply();
  }

  /** Starts or stops the canvas as the choices need, and hands viewers the right track. */
  async apply() {
    if (this.active && this.camera && !this.pipeline) this.startPipeline();
    if (!this.active && this.pipeline) this.stopPipeline();
    if (this.sender && this.sender.track !== this.track) await this.sender.replaceTrack(this.track);
    this.onTrack(this.track);
  }

  startPipeline() {
    const { width = 1280, height = 720, frameRate = 30 } = this.camera.getSettings();
    const canvas = document.createElement("canvas");
    canvas.width = width; canvas.height = height;
    const ctx = canvas.getContext("2d");
    const state = { stopped: false, cancel: () => {} };
    const track = canvas.captureStream(frameRate).getVideoTracks()[0];
    this.pipeline = { canvas, track, state };
    readFrames(this.camera, state, (frame, w, h) => {
      if (state.stopped) return;
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      this.draw(ctx, frame, w, h);
      this.frames++;
    });
  }

  stopPipeline() {
    const p = this.pipeline;
    if (!p) return;
    this.pipeline = null;
    p.state.stopped = true; p.state.cancel(); p.track.stop();
  }

  /** One frame: the camera through the filters, then the overlays, unfiltered. */
  draw(ctx, frame, w, h) {
    const blur = this.soft ? `blur(${Math.max(2, Math.round(w / 160))}px)` : "";
    ctx.filter = [FILTERS[this.filter] ?? "", blur].filter(Boolean).join(" ") || "none";
    ctx.drawImage(frame, 0, 0, w, h);
    ctx.filter = "none";
    const pad = Math.round(h / 40);
    if (this.pip?.video.videoWidth) {
      const v = this.pip.video;
      const pw = Math.round(w / 4), ph = Math.round(pw * v.videoHeight / v.videoWidth);
      const x = w - pw - pad, y = h - ph - pad;
      ctx.fillStyle = "#fff"; ctx.fillRect(x - 2, y - 2, pw + 4, ph + 4);
      ctx.drawImage(v, x, y, pw, ph);
    }
    if (this.logo) {
      const lh = Math.round(h / 8), lw = Math.round(lh * this.logo.width / this.logo.height);
      ctx.drawImage(this.logo, w - lw - pad, pad, lw, lh);
    }
    if (this.text) {
      const size = Math.round(h / 18);
      ctx.font = `600 ${size}px system-ui, sans-serif`;
      ctx.textBaseline = "middle";
      const tw = Math.min(ctx.measureText(this.text).width, w - 4 * pad);
      const bh = Math.round(size * 1.6), y = h - bh - pad;
      ctx.fillStyle = "rgba(0, 0, 0, 0.7)"; ctx.fillRect(pad, y, tw + 2 * pad, bh);
      ctx.fillStyle = "#fff"; ctx.fillText(this.text, 2 * pad, y + bh / 2, w - 4 * pad);
    }
  }
}

/** Wires the studio's effect controls to `effects`. `cameraId()` names the main camera,
 *  so "another camera" picks a different one when there is one. */
export function mountEffects(effects, $, cameraId = () => undefined) {
  $("fx-filter").onchange = () => { effects.filter = $("fx-filter").value; effects.apply(); };
  $("fx-soft").onchange = () => { effects.soft = $("fx-soft").checked; effects.apply(); };
  $("fx-text").oninput = () => { effects.text = $("fx-text").value.trim(); effects.apply(); };
  $("fx-logo").onchange = async () => {
    const file = $("fx-logo").files?.[0];
    $("fx-status").textContent = "";
    try { effects.logo = file ? await createImageBitmap(file) : null; } catch {
      effects.logo = null; $("fx-status").textContent = "That file is not an image this browser reads.";
    }
    $("fx-logo-clear").hidden = !effects.logo;
    effects.apply();
  };
  $("fx-logo-clear").onclick = () => {
    $("fx-logo").value = ""; effects.logo = null; $("fx-logo-clear").hidden = true; effects.apply();
  };
  $("fx-pip").onchange = async () => {
    const kind = $("fx-pip").value;
    $("fx-status").textContent = "";
    try {
      let stream = null;
      if (kind === "screen") stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
      if (kind === "camera") {
        const cams = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
        const other = cams.find((d) => d.deviceId && d.deviceId !== cameraId()) ?? cams[0];
        stream = await navigator.mediaDevices.getUserMedia({
          video: other?.deviceId ? { deviceId: { exact: other.deviceId } } : true,
        });
      }
      await effects.setPip(stream);
    } catch (e) {
      $("fx-pip").value = ""; await effects.setPip(null);
      $("fx-status").textContent = `No second source: ${e.message ?? e}`;
    }
  };
}

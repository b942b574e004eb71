// The studio's Videos card for the selected channel: resumable uploads with tus-js-client
// (the global `tus` of /sdk/tus.min.js; a dropped connection is retried and resumed from
// the server's offset, a reloaded page resumes the same file), the channel's videos with
// their title and visibility edited in place, deletion, whether broadcasts are recorded
// and how long recordings are kept, and whether the node may make smaller layers of them.
// Everything from the API goes in as text.
import { el, explain, clock } from "/js/ui.js";

const $ = (id) => document.getElementById(id);
const VISIBILITY = ["public", "unlisted", "private", "subscribers"];
const seconds = (ms) => `${Math.floor(ms / 60000)}:${String(Math.round(ms / 1000) % 60).padStart(2, "0")}`;

/** The problem's detail of a failed tus request, else the error's message. */
function tusError(err) {
  try {
    const body = err?.originalResponse?.getBody?.();
    const p = body ? JSON.parse(body) : null;
    if (p?.detail) return p.detail;
  } catch { /* not a problem document */ }
  return err?.message ?? String(err);
}

export function mountStudioVideos({ account, slug, studio }) {
  const base = `/channels/${encodeURIComponent(slug)}`;
  let upload = null;
  let stopped = false;
  const status = (t) => ($("upload-status").textContent = t);

  async function load() {
    const list = await account.call("GET", `${base}/videos?limit=100`);
    if (stopped) return;
    $("video-count").textContent = `${list.length} video${list.length === 1 ? "" : "s"}`;
    $("videos-list").replaceChildren(...(list.length ? list.map(row) : [el("li", { className: "muted" }, "No videos yet.")]));
    studio.videos = list;
  }

  function row(v) {
    const title = el("input", { type: "text", value: v.title, maxLength: 100, ariaLabel: "Title", className: "video-title" });
    const vis = el("select", { ariaLabel: "Visibility", className: "video-visibility" },
      ...VISIBILITY.map((x) => new Option(x, x, false, x === v.visibility)));
    const note = el("span", { role: "status", className: "muted" });
    const save = async () => {
      note.textContent = "";
      try {
        await account.call("PATCH", `/videos/${encodeURIComponent(v.id)}`, { title: title.value, visibility: vis.value });
        note.textContent = "saved";
      } catch (err) { note.textContent = explain(err); }
    };
    title.onchange = save; vis.onchange = save;
    const del = el("button", { type: "button", className: "small danger", onclick: async () => {
      if (!confirm(`Delete "${v.title}"? Its file goes too.`)) return;
      try { await account.call("DELETE", `/videos/${encodeURIComponent(v.id)}`); await load(); }
      catch (err) { note.textContent = explain(err); }
    } }, "Delete");
    return el("li", { className: "video", dataset: { id: v.id } },
      el("a", { href: `/video/${encodeURIComponent(v.id)}` },
        v.thumbnail_url ? el("img", { className: "still", src: v.thumbnail_url, alt: "" }) : "",
        v.kind === "recording" ? "● " : "", v.title),
      el("span", { className: "muted" }, ` ${seconds(v.duration_ms)} · ${v.kind} · ${clock(v.created_at)} `),
      title, vis, del, note);
  }

  $("upload-form").onsubmit = (e) => {
    e.preventDefault();
    const file = $("upload-file").files?.[0];
    if (!file || upload) return;
    const title = $("upload-title").value.trim() || file.name.replace(/\.[^.]*$/, "");
    $("upload-progress").hidden = false; $("upload-progress").value = 0;
    status("starting…");
    upload = new window.tus.Upload(file, {
      endpoint: `/api/v1${base}/uploads`,
      chunkSize: studio.uploadChunkSize ?? 4 * 1024 * 1024,
      retryDelays: [0, 500, 1000, 3000, 5000],
      // tus-js-client's own rule also gives up whenever navigator.onLine is false, which
      // some networks report wrongly (a machine with only a private route): retry a lost
      // connection, a busy upload (409, 423) and a server error; never a refusal.
      onShouldRetry: (err) => {
        const status = err?.originalResponse?.getStatus?.() ?? 0;
        return status === 0 || status === 409 || status === 423 || status >= 500;
      },
      metadata: { filename: file.name, filetype: file.type || "video/webm", title },
      removeFingerprintOnSuccess: true,
      onBeforeRequest: async (req) => {
        const token = await account.accessToken();
        if (token) req.setHeader("Authorization", `Bearer ${token}`);
      },
      onProgress: (sent, total) => {
        $("upload-progress").value = Math.floor((sent / total) * 100);
        status(`${Math.floor((sent / total) * 100)} %`);
        studio.uploadSent = sent;
      },
      onError: (err) => {
        status(`upload refused: ${tusError(err)}`);
        studio.uploadError = tusError(err);
        done();
      },
      onSuccess: async () => {
        status("uploaded and checked");
        done();
        await load().catch((err) => status(explain(err)));
      },
    });
    $("upload-pause").hidden = false;
    upload.findPreviousUploads().then((prev) => {
      if (prev.length) { upload.resumeFromPreviousUpload(prev[0]); status("resuming…"); }
      upload.start();
    });
  };
  function done() {
    upload = null;
    $("upload-pause").hidden = true; $("upload-resume").hidden = true;
  }
  $("upload-pause").onclick = () => {
    upload?.abort(); status("paused"); $("upload-pause").hidden = true; $("upload-resume").hidden = false;
  };
  $("upload-resume").onclick = () => {
    upload?.start(); status("resuming…"); $("upload-pause").hidden = false; $("upload-resume").hidden = true;
  };

  // Recording: off, or every broadcast from its next go-live (the largest layer, or each).
  $("recording").onchange = async () => {
    $("recording-status").textContent = "";
    const v = $("recording").value;
    try {
      await account.call("PUT", `${base}/recording`, v ? { enabled: true, layers: v } : { enabled: false });
      $("recording-status").textContent = v ? "saved: from your next go-live" : "saved";
    } catch (err) { $("recording-status").textContent = explain(err); }
  };
  account.call("GET", `${base}/recording`).then((r) => {
    if (!stopped) $("recording").value = r.enabled ? r.layers : "";
  }).catch(() => undefined);

  // The transcoded ladder: on unless turned off; a node that transcodes reads it at go-live.
  $("ladder").onchange = async () => {
    $("ladder-status").textContent = "";
    const enabled = $("ladder").checked;
    try {
      await account.call("PUT", `${base}/ladder`, { enabled });
      $("ladder-status").textContent = "saved: from your next go-live";
    } catch (err) { $("ladder-status").textContent = explain(err); }
  };
  account.call("GET", `${base}/ladder`).then((r) => {
    if (!stopped) $("ladder").checked = r.enabled;
  }).catch(() => undefined);

  $("retention").onchange = async () => {
    $("retention-status").textContent = "";
    const v = $("retention").value;
    try {
      await account.call("PUT", `${base}/retention`, { keep_days: v ? Number(v) : null });
      $("retention-status").textContent = "saved";
    } catch (err) { $("retention-status").textContent = explain(err); }
  };
  account.call("GET", `${base}/retention`).then((r) => {
    if (!stopped) $("retention").value = r.keep_days == null ? "" : String(r.keep_days);
  }).catch(() => undefined);

  load().catch((err) => status(explain(err)));
  return () => { stopped = true; upload?.abort(); done(); };
}

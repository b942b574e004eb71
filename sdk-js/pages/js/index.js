// The home page's "On this node": every stream the node carries, refreshed every 3 s (an
// open node's streams have no channel, so the lists of discover.js do not show them).
// Stream names come from the node and may be anything a publisher chose: they go into the
// page as text, never as markup.
async function refresh() {
  const list = document.getElementById("streams");
  try {
    const { streams } = await (await fetch("/api/streams")).json();
    const live = streams.filter((s) => s.active);
    list.replaceChildren(...(live.length ? live : [null]).map((s) => {
      const li = document.createElement("li");
      if (!s) { li.className = "muted"; li.textContent = "Nobody is live right now."; return li; }
      const a = document.createElement("a");
      a.href = `/watch/${encodeURIComponent(s.name)}`;
      a.textContent = s.name;
      li.append(a, ` — ${s.viewers} watching, ${s.layers.length} layer(s)`);
      return li;
    }));
  } catch (e) { list.textContent = `Could not load streams: ${e}`; }
}
refresh(); setInterval(refresh, 3000);

// What the channel page and the studio share: the chat panel, polls, Q&A and surveys, drawn
// with plain DOM calls. Everything a user wrote (messages, names, questions, poll options)
// goes into the page with textContent or as an input's value, never as markup: `el` below
// has no way to set HTML.

/** `el("li", { className: "x", dataset: { id: 1 } }, "text", child)`: an element, children as text or nodes. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "innerHTML" || k === "outerHTML") throw new Error("no markup");
    else node[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

const $ = (id) => document.getElementById(id);
const MOD_ROLES = ["moderator", "owner", "admin"];
export const isMod = (role) => MOD_ROLES.includes(role);

/** "14:05" for a time the API gives as milliseconds or as an ISO string. */
export function clock(at) {
  const d = new Date(typeof at === "string" && /^\d+$/.test(at) ? Number(at) : at);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}

/** A refused post or call as a person reads it: the server's detail, and when to try again. */
export function explain(err) {
  const detail = err?.detail || err?.message || String(err);
  const wait = err?.retryAfter ? ` Try again in ${Math.ceil(err.retryAfter)} s.` : "";
  return `${detail}${wait}`;
}

/** A subscriber's badge beside their name in chat (their tier's name on hover), or null. */
function subBadge(tier) {
  return tier ? el("span", { className: "sub-badge", title: `Subscriber: ${tier}` }, "★") : null;
}

/**
 * The chat panel (the elements with ids `chat-state`, `pinned`, `messages`, `chat-form`,
 * `chat-input`, `chat-error`, `replying`, `replying-to`, `reply-cancel`, `chat-signin`)
 * bound to a `Chat` and, for the actions, the channel's REST API. `signinNext` is where
 * "sign in to chat" comes back to.
 */
export function mountChat({ chat, api, signinNext, onTimeout, badges }) {
  const list = $("messages");
  const rows = new Map(); // id -> li
  let replyTo = null;
  let me = null, role = "anonymous";

  const stateText = { connecting: "connecting…", open: "", reconnecting: "reconnecting…", closed: "offline" };
  chat.on("state", ({ state }) => {
    $("chat-state").textContent = stateText[state] ?? state;
    $("chat-state").hidden = !$("chat-state").textContent;
  });

  const nearBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  const byId = (id) => chat.messages.find((m) => m.id === id);

  function row(m) {
    const mine = me && m.user?.username === me.username;
    const li = el("li", { className: mine ? "mine" : "", dataset: { id: m.id, user: m.user?.username ?? "" } });
    if (m.reply_to !== null && m.reply_to !== undefined) {
      const parent = byId(m.reply_to);
      li.append(el("span", { className: "reply" },
        parent ? `↪ ${parent.user?.display_name || parent.user?.username}: ${parent.text.slice(0, 80)}` : "↪ reply"));
    }
    li.append(
      el("span", { className: "when" }, clock(m.created_at)),
      el("span", { className: "who", title: `@${m.user?.username ?? ""}` }, m.user?.display_name || m.user?.username || "?"),
      el("span", { className: "text" }, m.text),
    );
    const badge = subBadge(badges?.badgeFor(m.user?.username));
    if (badge) li.querySelector(".who").after(badge);
    const actions = el("span", { className: "actions" });
    const act = (label, title, fn) => actions.append(el("button", { type: "button", className: "small", title, onclick: fn }, label));
    if (me) act("Reply", "Reply to this message", () => startReply(m));
    if (me && !mine) act("Report", "Report this message to the moderators", () => reportForm(li, m));
    if (mine || isMod(role)) act("Delete", "Delete this message", () => api.chat.delete(m.id).catch((e) => note(explain(e))));
    if (isMod(role)) {
      act("Pin", "Pin this message on top of the chat", () => api.chat.pin(m.id).catch((e) => note(explain(e))));
      if (!mine) act("Timeout", "Stop this user posting for 10 minutes", () => onTimeout?.(m.user.username));
    }
    if (actions.childElementCount) li.append(actions);
    return li;
  }

  /** A small form under the message: why, then send. */
  function reportForm(li, m) {
    if (li.querySelector(".report")) return;
    const reason = el("select", { className: "report-reason", ariaLabel: "Reason" },
      new Option("Spam", "spam"), new Option("Harassment", "harassment"), new Option("Hateful", "hateful"), new Option("Other", "other"));
    const form = el("form", { className: "report row" }, reason,
      el("button", { type: "submit", className: "small" }, "Send report"),
      el("button", { type: "button", className: "small", onclick: () => form.remove() }, "Cancel"));
    form.onsubmit = async (e) => {
      e.preventDefault();
      try { await api.chat.report(m.id, reason.value); form.replaceChildren(el("span", { className: "muted" }, "Reported. Thank you.")); }
      catch (err) { form.replaceChildren(el("span", { className: "error" }, explain(err))); }
      setTimeout(() => form.remove(), 3000);
    };
    li.append(form);
  }

  function place(m) {
    if (rows.has(m.id)) return;
    const stick = nearBottom();
    const li = row(m);
    rows.set(m.id, li);
    // Insert in id order: before the row of the next message held.
    const i = chat.messages.indexOf(m);
    const next = chat.messages.slice(i + 1).find((n) => rows.has(n.id));
    list.insertBefore(li, next ? rows.get(next.id) : null);
    // The SDK drops the oldest beyond what it keeps: drop their rows too.
    if (rows.size > chat.messages.length) {
      const held = new Set(chat.messages.map((x) => x.id));
      for (const [id, r] of rows) if (!held.has(id)) { r.remove(); rows.delete(id); }
    }
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function redraw() {
    rows.clear();
    list.replaceChildren();
    for (const m of chat.messages) place(m);
    list.scrollTop = list.scrollHeight;
  }

  function note(text, code = "") {
    $("chat-error").textContent = text;
    $("chat-error").dataset.code = code;
  }

  function startReply(m) {
    replyTo = m.id;
    $("replying-to").textContent = m.user?.display_name || m.user?.username;
    $("replying").hidden = false;
    $("chat-input").focus();
  }
  $("reply-cancel").onclick = () => { replyTo = null; $("replying").hidden = true; };

  function showPinned(m) {
    $("pinned").hidden = !m;
    if (!m) return;
    const children = [el("strong", {}, "📌 "), el("strong", {}, `${m.user?.display_name || m.user?.username}: `), el("span", { className: "text" }, m.text)];
    if (isMod(role)) children.push(" ", el("button", { type: "button", className: "small", onclick: () => api.chat.unpin().catch((e) => note(explain(e))) }, "Unpin"));
    $("pinned").replaceChildren(...children);
  }

  chat.on("welcome", (w) => {
    const roleChanged = w.role !== role || (w.user?.username ?? null) !== (me?.username ?? null);
    me = w.user; role = w.role;
    $("chat-form").hidden = !me;
    $("chat-signin").hidden = !!me;
    if (w.restriction) note(w.restriction.detail || w.restriction.code, w.restriction.code);
    showPinned(w.pinned);
    if (roleChanged) redraw();
  });
  chat.on("message", place);
  chat.on("deleted", (ids) => {
    for (const id of ids) { rows.get(id)?.remove(); rows.delete(id); }
  });
  chat.on("pinned", showPinned);
  chat.on("truncated", () => list.append(el("li", { className: "system" }, "Some messages were missed while you were away.")));
  chat.on("error", (e) => {
    if (e.code === "not_found" && !chat.welcome) list.replaceChildren(el("li", { className: "system" }, "This stream has no chat."));
    else note(explain(e), e.code);
  });

  const link = $("chat-signin").querySelector("a");
  if (link) link.href = `/signin?next=${encodeURIComponent(signinNext)}`;

  $("chat-form").onsubmit = async (e) => {
    e.preventDefault();
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text) return;
    $("chat-send").disabled = true;
    try {
      await chat.send(text, replyTo === null ? {} : { replyTo });
      input.value = ""; note("");
      replyTo = null; $("replying").hidden = true;
    } catch (err) {
      note(explain(err), err.code ?? "");
    } finally {
      $("chat-send").disabled = false;
      input.focus();
    }
  };
  // Badges read after messages were drawn: added to the rows already there.
  badges?.onChange(() => {
    for (const li of list.children) {
      const want = badges.badgeFor(li.dataset.user);
      const have = li.querySelector(".sub-badge");
      if (!want) { have?.remove(); continue; }
      if (!have) li.querySelector(".who")?.after(subBadge(want));
    }
  });
  return { redraw, note };
}

/** Polls: live results for everyone, a vote for the signed-in; a close button for moderators. */
export function mountPolls({ chat, api, root, listEl, canVote, canClose }) {
  const polls = new Map(); // id -> poll
  const mine = new Map(); // id -> the choices this account made

  function draw() {
    const shown = [...polls.values()].filter((p) => !p.closed || canClose() || mine.has(p.id) || p.keep)
      .sort((a, b) => Number(a.closed) - Number(b.closed));
    if (root) root.hidden = shown.length === 0;
    listEl.replaceChildren(...shown.map(drawPoll));
  }

  function drawPoll(p) {
    const voted = mine.get(p.id) ?? p.my_choices ?? null;
    const open = !p.closed && canVote() && !voted;
    const picked = new Set();
    const total = p.total_votes || p.options.reduce((s, o) => s + o.votes, 0);
    const box = el("div", { className: "poll", dataset: { id: p.id } }, el("p", { className: "q" }, p.question));
    const voteButton = el("button", { type: "button", className: "primary", disabled: true }, "Vote");
    p.options.forEach((o, i) => {
      const share = total ? Math.round((o.votes / total) * 100) : 0;
      const fill = el("span", { className: "fill" });
      fill.style.width = `${share}%`;
      const opt = el(open ? "button" : "div", {
        className: `option${voted?.includes(i) ? " chosen" : ""}`, dataset: { index: i },
      }, fill, el("span", { className: "label" }, o.text), el("span", { className: "count" }, `${share}% · ${o.votes}`));
      if (open) {
        opt.type = "button";
        opt.onclick = () => {
          if (!p.multiple) return vote(p, [i]);
          if (picked.has(i)) picked.delete(i); else picked.add(i);
          opt.classList.toggle("chosen", picked.has(i));
          voteButton.disabled = picked.size === 0;
        };
      }
      box.append(opt);
    });
    if (open && p.multiple) { voteButton.onclick = () => vote(p, [...picked]); box.append(voteButton); }
    const status = [`${total} vote${total === 1 ? "" : "s"}`];
    if (p.closed) status.push("closed");
    else if (!canVote()) status.push("sign in to vote");
    else if (voted) status.push("you voted");
    const meta = el("p", { className: "muted poll-meta" }, status.join(" · "));
    if (canClose() && !p.closed) {
      meta.append(" ", el("button", { type: "button", className: "small danger", onclick: () => api.polls.close(p.id).then(update).catch((e) => alert(explain(e))) }, "Close poll"));
    }
    box.append(meta, el("p", { className: "error poll-error", role: "alert" }));
    return box;
  }

  async function vote(p, choices) {
    try {
      mine.set(p.id, choices);
      update(await api.polls.vote(p.id, choices));
    } catch (e) {
      if (e.status !== 409) mine.delete(p.id);
      draw();
      const box = listEl.querySelector(`.poll[data-id="${CSS.escape(p.id)}"] .poll-error`);
      if (box) box.textContent = explain(e);
    }
  }

  function update(p) {
    if (!p) return;
    const old = polls.get(p.id);
    // The live event carries no my_choices: keep what this account did.
    if (p.my_choices) mine.set(p.id, p.my_choices);
    polls.set(p.id, { ...old, ...p, keep: old?.keep || !p.closed });
    draw();
  }

  chat.on("welcome", (w) => w.polls.forEach(update));
  chat.on("poll", update);
  api.polls.list().then((list) => list.forEach(update)).catch(() => undefined);
  return { update, draw, polls };
}

/** Q&A: ask and upvote (signed in), sort by votes or time; moderators mark answered, pin, hide. */
export function mountQa({ chat, api, listEl, sortEl, form, input, errorEl, canAsk, canModerate }) {
  const questions = new Map();
  const upvoted = new Set();
  const sorters = {
    votes: (a, b) => Number(b.pinned) - Number(a.pinned) || b.upvotes - a.upvotes || String(a.created_at).localeCompare(String(b.created_at)),
    time: (a, b) => Number(b.pinned) - Number(a.pinned) || new Date(b.created_at) - new Date(a.created_at),
  };

  function draw() {
    const sort = sorters[sortEl.value] ?? sorters.votes;
    const shown = [...questions.values()].filter((q) => !q.hidden).sort(sort);
    listEl.replaceChildren(...(shown.length ? shown.map(drawOne) : [el("li", { className: "muted" }, "No questions yet.")]));
    form.hidden = !canAsk();
  }

  function drawOne(q) {
    const up = el("button", {
      type: "button", className: "small upvote", title: "Upvote",
      disabled: !canAsk() || upvoted.has(q.id),
      onclick: async () => {
        upvoted.add(q.id); up.disabled = true;
        try { update(await api.qa.upvote(q.id)); } catch (e) { if (e.status !== 409) upvoted.delete(q.id); errorEl.textContent = explain(e); draw(); }
      },
    }, "▲");
    const meta = el("div", { className: "meta" }, `${q.user?.display_name || q.user?.username || "?"} · ${clock(q.created_at)}`);
    if (q.pinned) meta.append(" ", el("span", { className: "badge accent" }, "pinned"));
    if (q.answered) meta.append(" ", el("span", { className: "badge ok answered-badge" }, "answered"));
    const li = el("li", { className: `question${q.answered ? " answered" : ""}`, dataset: { id: q.id } },
      el("div", { className: "votes" }, up, el("span", { className: "count" }, String(q.upvotes))),
      el("div", { className: "body" }, el("div", { className: "text" }, q.text), meta));
    if (canModerate()) {
      const patch = (fields) => api.qa.update(q.id, fields).then(update).catch((e) => { errorEl.textContent = explain(e); });
      li.querySelector(".body").append(el("div", { className: "row mod-actions" },
        el("button", { type: "button", className: "small mark-answered", onclick: () => patch({ answered: !q.answered }) }, q.answered ? "Not answered" : "Mark answered"),
        el("button", { type: "button", className: "small pin", onclick: () => patch({ pinned: !q.pinned }) }, q.pinned ? "Unpin" : "Pin"),
        el("button", { type: "button", className: "small danger hide", onclick: () => patch({ hidden: true }) }, "Hide")));
    }
    return li;
  }

  function update(q) {
    if (!q) return;
    questions.set(q.id, { ...questions.get(q.id), ...q });
    draw();
  }

  async function load() {
    try { (await api.qa.list(sortEl.value)).forEach(update); } catch { /* the live events still come */ }
    draw();
  }

  sortEl.onchange = draw;
  form.onsubmit = async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    try { update(await api.qa.ask(text)); input.value = ""; errorEl.textContent = ""; }
    catch (err) { errorEl.textContent = explain(err); }
  };
  chat.on("question", update);
  chat.on("welcome", draw);
  void load();
  return { update, draw, load, questions };
}

/** Open surveys, answered by signed-in viewers over REST. */
export function mountSurveys({ chat, api, root, listEl, canAnswer }) {
  const surveys = new Map();
  const done = new Set();

  function draw() {
    const open = [...surveys.values()].filter((s) => !s.closed && !done.has(s.id));
    root.hidden = open.length === 0;
    listEl.replaceChildren(...open.map(drawOne));
  }

  function drawOne(s) {
    const fields = s.questions.map((q, i) => {
      const name = `survey-${s.id}-${i}`;
      let input;
      if (q.kind === "choice") {
        input = el("div", {}, ...(q.options ?? []).map((o, j) =>
          el("label", { className: "inline" }, el("input", { type: "radio", name, value: String(j), required: true }), o)));
      } else if (q.kind === "scale") {
        input = el("input", { type: "number", name, min: q.min ?? 1, max: q.max ?? 5, required: true });
      } else {
        input = el("textarea", { name, rows: 2, maxLength: 1000 });
      }
      return el("div", { className: "survey-q" }, el("p", { className: "q" }, q.prompt), input);
    });
    const error = el("p", { className: "error", role: "alert" });
    const form = el("form", { className: "survey", dataset: { id: s.id } }, el("h3", {}, s.title), ...fields);
    if (canAnswer()) form.append(el("button", { type: "submit" }, "Send answers"), error);
    else form.append(el("p", { className: "muted" }, "Sign in to answer."));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const data = new FormData(form);
      const answers = s.questions.map((q, i) => {
        const v = data.get(`survey-${s.id}-${i}`);
        return q.kind === "text" ? String(v ?? "") : Number(v);
      });
      try { await api.surveys.respond(s.id, answers); done.add(s.id); draw(); }
      catch (err) { if (err.status === 409) { done.add(s.id); draw(); } else error.textContent = explain(err); }
    };
    return form;
  }

  const update = (s) => { if (s) { surveys.set(s.id, { ...surveys.get(s.id), ...s }); draw(); } };
  chat.on("survey", update);
  chat.on("welcome", draw);
  api.surveys.list().then((l) => l.forEach(update)).catch(() => undefined);
  return { update };
}

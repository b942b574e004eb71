// A channel's live chat room (docs/CHAT.md): typed JSON frames over the `chat` data
// channel of a WHIP/WHEP session, or over the room's WebSocket when there is no such
// channel (or it does not open in time). Messages are kept by id, in id order, duplicates
// dropped; a lost connection is reopened with backoff and `since` = the last id seen, so
// nothing in between is missed.
/** An `error` frame (or a refused `send`): the code and detail of docs/CHAT.md. */
export class ChatError extends Error {
    constructor(code, detail, status = 0, 
    /** Seconds to wait before trying again (`timed_out`, `slow_mode`, `flood`). */
    retryAfter) {
        super(detail || code);
        this.code = code;
        this.detail = detail;
        this.status = status;
        this.retryAfter = retryAfter;
    }
}
const MAX_BACKOFF_MS = 15000;
const PING_EVERY_MS = 20000;
const SEND_TIMEOUT_MS = 10000;
/** The live chat of one channel. */
export class Chat {
    constructor(slug, options = {}) {
        this.slug = slug;
        this.options = options;
        /** Messages in id order. */
        this.messages = [];
        /** The last welcome: user, role, settings, pinned message, open polls, restriction. */
        this.welcome = null;
        this.state = "connecting";
        this.transport = null;
        /** Messages that were missed while away (`history.truncated`). */
        this.truncated = false;
        this.handlers = new Map();
        this.pending = new Map();
        this.wire = null;
        this.attempt = 0;
        this.nonce = 0;
        this.currentToken = null;
        this.dataChannelFailed = false;
        this.base = options.base ?? location.origin;
    }
    /** Subscribes to an event; returns the function that unsubscribes. */
    on(event, handler) {
        let set = this.handlers.get(event);
        if (!set)
            this.handlers.set(event, (set = new Set()));
        set.add(handler);
        return () => set.delete(handler);
    }
    /** Calls `cb` with every tip announced to the room; returns the function that stops it. */
    onTip(cb) {
        return this.on("tip", cb);
    }
    emit(event, data) {
        for (const h of this.handlers.get(event) ?? []) {
            try {
                h(data);
            }
            catch (e) {
                console.error(`chat ${event} handler:`, e);
            }
        }
    }
    /** The id of the newest message held, if any. */
    get lastId() {
        return this.messages.length ? this.messages[this.messages.length - 1].id : undefined;
    }
    /** Opens the room. Resolves once welcomed, or rejects if the first attempt fails. */
    connect() {
        return new Promise((resolve, reject) => {
            const offW = this.on("welcome", (w) => {
                offW();
                offS();
                resolve(w);
            });
            const offS = this.on("state", ({ state }) => {
                if (state === "reconnecting" || state === "closed") {
                    offW();
                    offS();
                    reject(new ChatError("unavailable", "could not join the chat"));
                }
            });
            void this.open();
        });
    }
    /**
     * Posts `text`; resolves with the new message's id when the server acknowledges it,
     * rejects with a {@link ChatError} (`timed_out`, `slow_mode`, …, or `disconnected`).
     */
    send(text, options = {}) {
        if (!this.wire || this.state !== "open") {
            return Promise.reject(new ChatError("disconnected", "the chat is not connected"));
        }
        const nonce = `n${++this.nonce}-${Date.now().toString(36)}`;
        const frame = { type: "send", text, nonce };
        if (options.replyTo !== undefined)
            frame.reply_to = options.replyTo;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(nonce);
                reject(new ChatError("timeout", "the server did not answer"));
            }, SEND_TIMEOUT_MS);
            this.pending.set(nonce, { resolve, reject, timer });
            this.write(frame);
        });
    }
    /** Sends a refreshed access token (the server answers with a new `welcome`). */
    auth(token) {
        this.currentToken = token;
        this.scheduleAuth(token);
        if (this.state === "open")
            this.write({ type: "auth", token });
    }
    /** Leaves the room for good. */
    close() {
        this.setState("closed");
        clearTimeout(this.retryTimer);
        clearTimeout(this.authTimer);
        this.drop();
    }
    setState(state) {
        if (this.state === "closed")
            return;
        this.state = state;
        this.emit("state", { state, transport: this.transport });
    }
    write(frame) {
        try {
            this.wire?.send(JSON.stringify(frame));
        }
        catch {
            this.lost();
        }
    }
    async token() {
        const t = this.options.token;
        const value = typeof t === "function" ? await t() : t;
        return value ?? null;
    }
    /** One connection attempt: the data channel when asked for and usable, else the WebSocket. */
    async open() {
        if (this.state === "closed")
            return;
        this.currentToken = await this.token().catch(() => null);
        const want = this.options.transport ?? "auto";
        const channel = this.options.session?.chatChannel;
        const useChannel = want === "datachannel" || (want === "auto" && !!channel && !this.dataChannelFailed);
        if (useChannel && channel) {
            const ok = await this.openDataChannel(channel);
            if (ok || this.state === "closed")
                return;
            if (want === "datachannel")
                return this.lost();
            // Never opened, or no welcome on it: this server or path has none, use the WebSocket.
            this.dataChannelFailed = true;
        }
        this.openWebSocket();
    }
    hello() {
        const frame = { type: "hello" };
        if (this.currentToken)
            frame.token = this.currentToken;
        if (this.seen !== undefined)
            frame.since = this.seen;
        this.write(frame);
    }
    /** Resolves true once welcomed on `dc`, false if it does not open or answer in time. */
    openDataChannel(dc) {
        const timeout = this.options.dataChannelTimeoutMs ?? 4000;
        return new Promise((resolve) => {
            let settled = false;
            const settle = (ok) => {
                if (settled)
                    return;
                settled = true;
                clearTimeout(timer);
                offW();
                if (!ok) {
                    dc.removeEventListener("message", onMessage);
                    dc.removeEventListener("close", onClose);
                    if (this.wire === wire)
                        this.wire = null;
                }
                resolve(ok);
            };
            const timer = setTimeout(() => settle(false), timeout);
            const offW = this.on("welcome", () => settle(true));
            const onMessage = (e) => {
                if (typeof e.data === "string")
                    this.receive(e.data);
            };
            const onClose = () => {
                if (!settled)
                    settle(false);
                else if (this.wire === wire)
                    this.lost();
            };
            const wire = {
                kind: "datachannel",
                send: (f) => dc.send(f),
                // The channel belongs to the session: leave it open, stop listening.
                close: () => {
                    dc.removeEventListener("message", onMessage);
                    dc.removeEventListener("close", onClose);
                },
            };
            const start = () => {
                this.wire = wire;
                this.transport = "datachannel";
                this.hello();
            };
            dc.addEventListener("message", onMessage);
            dc.addEventListener("close", onClose);
            if (dc.readyState === "open")
                start();
            else if (dc.readyState === "connecting")
                dc.addEventListener("open", start, { once: true });
            else
                settle(false);
        });
    }
    openWebSocket() {
        const url = new URL(`/api/v1/channels/${encodeURIComponent(this.slug)}/chat/ws`, this.base);
        url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
        let ws;
        try {
            ws = new WebSocket(url.toString());
        }
        catch {
            return this.lost();
        }
        const wire = { kind: "websocket", send: (f) => ws.send(f), close: () => ws.close() };
        this.wire = wire;
        this.transport = "websocket";
        ws.onopen = () => this.hello();
        ws.onmessage = (e) => {
            if (typeof e.data === "string")
                this.receive(e.data);
        };
        ws.onclose = () => {
            if (this.wire !== wire)
                return;
            // Closed before any welcome: a browser does not say why, so ask whether the room exists.
            if (!this.welcome)
                void this.roomExists().then((yes) => (yes ? this.lost() : this.gone()));
            else
                this.lost();
        };
    }
    /** false when the server says the channel has no room (404); true otherwise. */
    async roomExists() {
        try {
            const url = new URL(`/api/v1/channels/${encodeURIComponent(this.slug)}/chat/settings`, this.base);
            return (await fetch(url)).status !== 404;
        }
        catch {
            return true;
        }
    }
    /** There is no room to join: say so and stop. */
    gone() {
        this.drop();
        this.emit("error", new ChatError("not_found", "this stream has no chat", 404));
        this.close();
    }
    /** The connection is gone: fail what waits on it, then try again after a backoff. */
    lost() {
        this.drop();
        if (this.state === "closed")
            return;
        this.setState("reconnecting");
        const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
        this.attempt++;
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => void this.open(), delay);
    }
    drop() {
        const wire = this.wire;
        this.wire = null;
        clearInterval(this.pingTimer);
        wire?.close();
        for (const [nonce, p] of this.pending) {
            clearTimeout(p.timer);
            p.reject(new ChatError("disconnected", "the chat connection was lost; not sent"));
            this.pending.delete(nonce);
        }
    }
    receive(raw) {
        let frame;
        try {
            frame = JSON.parse(raw);
        }
        catch {
            return;
        }
        this.dispatch(frame);
    }
    dispatch(f) {
        switch (f.type) {
            case "batch":
                for (const e of f.events ?? [])
                    this.dispatch(e);
                return;
            case "welcome": {
                const w = f;
                this.welcome = {
                    user: w.user ?? null,
                    role: w.role ?? "anonymous",
                    settings: w.settings,
                    pinned: w.pinned ?? null,
                    polls: w.polls ?? [],
                    restriction: w.restriction ?? null,
                };
                this.attempt = 0;
                clearInterval(this.pingTimer);
                this.pingTimer = setInterval(() => this.write({ type: "ping" }), PING_EVERY_MS);
                if (this.currentToken)
                    this.scheduleAuth(this.currentToken);
                this.setState("open");
                this.emit("welcome", this.welcome);
                return;
            }
            case "history":
                if (f.truncated) {
                    this.truncated = true;
                    this.emit("truncated", true);
                }
                for (const m of f.messages ?? [])
                    this.insert(m);
                return;
            case "message":
                this.insert(f.message);
                return;
            case "deleted": {
                const ids = f.ids ?? [];
                const gone = new Set(ids);
                for (let i = this.messages.length - 1; i >= 0; i--) {
                    if (gone.has(this.messages[i].id))
                        this.messages.splice(i, 1);
                }
                if (this.welcome?.pinned && gone.has(this.welcome.pinned.id))
                    this.welcome.pinned = null;
                this.emit("deleted", ids);
                return;
            }
            case "pinned":
                if (this.welcome)
                    this.welcome.pinned = f.message ?? null;
                this.emit("pinned", f.message ?? null);
                return;
            case "settings":
                if (this.welcome)
                    this.welcome.settings = f.settings;
                this.emit("settings", f.settings);
                return;
            case "poll":
                if (this.welcome) {
                    const polls = this.welcome.polls.filter((p) => p.id !== f.poll.id);
                    this.welcome.polls = f.poll.closed ? polls : [...polls, f.poll];
                }
                this.emit("poll", f.poll);
                return;
            case "question":
                this.emit("question", f.question);
                return;
            case "survey":
                this.emit("survey", f.survey);
                return;
            case "tip":
                if (f.tip)
                    this.emit("tip", f.tip);
                return;
            case "ack": {
                const p = this.pending.get(f.nonce);
                if (p) {
                    clearTimeout(p.timer);
                    this.pending.delete(f.nonce);
                    p.resolve({ id: f.id });
                }
                return;
            }
            case "error": {
                const err = new ChatError(f.code ?? "error", f.detail ?? "", f.status ?? 0, f.retry_after ?? undefined);
                const p = f.nonce !== undefined ? this.pending.get(f.nonce) : undefined;
                if (p) {
                    clearTimeout(p.timer);
                    this.pending.delete(f.nonce);
                    p.reject(err);
                }
                else {
                    this.emit("error", err);
                }
                return;
            }
            default:
                return; // pong, and anything newer than this client
        }
    }
    /** Puts `m` in id order; a message already held is a duplicate and is dropped. */
    insert(m) {
        if (!m || typeof m.id !== "number")
            return;
        if (this.seen === undefined || m.id > this.seen)
            this.seen = m.id;
        const list = this.messages;
        let i = list.length;
        while (i > 0 && list[i - 1].id > m.id)
            i--;
        if (i > 0 && list[i - 1].id === m.id)
            return;
        list.splice(i, 0, m);
        const keep = this.options.keep ?? 1000;
        if (list.length > keep)
            list.splice(0, list.length - keep);
        if (list.includes(m))
            this.emit("message", m);
    }
    /** Re-authenticates a minute before a JWT access token expires, with a fresh one. */
    scheduleAuth(token) {
        clearTimeout(this.authTimer);
        if (typeof this.options.token !== "function")
            return;
        const exp = jwtExpiry(token);
        if (!exp)
            return;
        const wait = Math.max(5000, exp - Date.now() - 60000);
        this.authTimer = setTimeout(async () => {
            const fresh = await this.token().catch(() => null);
            if (fresh && fresh !== this.currentToken)
                this.auth(fresh);
            else if (fresh)
                this.scheduleAuth(fresh);
        }, wait);
    }
}
/** A JWT's `exp` in milliseconds, or undefined when `token` is not one. */
export function jwtExpiry(token) {
    const part = token.split(".")[1];
    if (!part)
        return undefined;
    try {
        const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
        const exp = JSON.parse(json).exp;
        return typeof exp === "number" ? exp * 1000 : undefined;
    }
    catch {
        return undefined;
    }
}

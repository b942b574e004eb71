// A channel's live chat room (docs/CHAT.md): typed JSON frames over the `chat` data
// channel of a WHIP/WHEP session, or over the room's WebSocket when there is no such
// channel (or it does not open in time). Messages are kept by id, in id order, duplicates
// dropped; a lost connection is reopened with backoff and `since` = the last id seen, so
// nothing in between is missed.

import type { Session } from "./cascade.js";
import type { Tip } from "./money.js";

/** Who wrote a message or a question. */
export interface ChatUser {
  username: string;
  display_name: string;
}

/** A chat message. Its `text` is plain text: render it as text, never as HTML. */
export interface ChatMessage {
  id: number;
  user: ChatUser;
  text: string;
  reply_to: number | null;
  mentions: string[];
  /** Unix milliseconds. */
  created_at: number;
}

export type ChatMode = "everyone" | "followers" | "moderators";
export type ChatRole = "anonymous" | "viewer" | "moderator" | "owner" | "admin";

export interface ChatSettings {
  slow_mode_secs: number;
  mode: ChatMode;
}

/** Why this user cannot post now. */
export interface Restriction {
  code: string;
  detail: string;
  /** Seconds until it lifts (a timeout, slow mode). */
  retry_after?: number;
}

export interface PollOption {
  text: string;
  votes: number;
}

export interface Poll {
  id: string;
  question: string;
  options: PollOption[];
  multiple: boolean;
  closes_at: string | number | null;
  closed: boolean;
  total_votes: number;
  /** This account's choices, when it voted. */
  my_choices?: number[] | null;
}

export interface Question {
  id: string;
  user: ChatUser;
  text: string;
  upvotes: number;
  answered: boolean;
  pinned: boolean;
  /** true: a moderator hid it; remove it from view. */
  hidden: boolean;
  /** Unix milliseconds. */
  created_at: number;
}

export interface SurveyQuestion {
  kind: "choice" | "scale" | "text";
  prompt: string;
  options?: string[];
  min?: number;
  max?: number;
}

export interface Survey {
  id: string;
  title: string;
  questions: SurveyQuestion[];
  closed: boolean;
  responses: number;
}

export interface Welcome {
  user: ChatUser | null;
  role: ChatRole;
  settings: ChatSettings;
  pinned: ChatMessage | null;
  polls: Poll[];
  restriction: Restriction | null;
}

/** `connecting` (first time), `open` (welcomed), `reconnecting` (lost, retrying), `closed` (by `close()`). */
export type ChatState = "connecting" | "open" | "reconnecting" | "closed";
export type ChatTransport = "datachannel" | "websocket";

/** An `error` frame (or a refused `send`): the code and detail of docs/CHAT.md. */
export class ChatError extends Error {
  constructor(
    readonly code: string,
    readonly detail: string,
    readonly status = 0,
    /** Seconds to wait before trying again (`timed_out`, `slow_mode`, `flood`). */
    readonly retryAfter?: number,
  ) {
    super(detail || code);
  }
}

/** The events a {@link Chat} emits, and what each carries. */
export interface ChatEvents {
  /** The server's greeting: who we are, the settings, the pinned message, open polls. */
  welcome: Welcome;
  /** A message new to this client (live or from history); `chat.messages` has it in place. */
  message: ChatMessage;
  /** Messages removed (a deletion, or all of a user's after a ban). */
  deleted: number[];
  pinned: ChatMessage | null;
  settings: ChatSettings;
  poll: Poll;
  question: Question;
  survey: Survey;
  /** A tip whose payment succeeded (the on-stream alert); see {@link Chat.onTip}. */
  tip: Tip;
  /** An error not answering one of our sends (a refused `auth`, a bad frame). */
  error: ChatError;
  /** The connection's state, and which transport carries it. */
  state: { state: ChatState; transport: ChatTransport | null };
  /** History was missed: more than the server replays went by while disconnected. */
  truncated: true;
}

export interface ChatOptions {
  /** The server's origin; the page's by default. */
  base?: string;
  /**
   * An account's access token, or a function returning the current one (called on every
   * (re)connection). None: the client reads and cannot post.
   */
  token?: string | null | (() => string | null | undefined | Promise<string | null | undefined>);
  /** Use this WHIP/WHEP session's `chat` data channel rather than a WebSocket. */
  session?: Session;
  /** "auto" (the session's data channel when there is one, else the WebSocket), or force one. */
  transport?: "auto" | ChatTransport;
  /** How long to wait for the data channel to open and the server's welcome on it (ms). */
  dataChannelTimeoutMs?: number;
  /** How many messages to keep (the oldest go first). */
  keep?: number;
}

type Handler<K extends keyof ChatEvents> = (data: ChatEvents[K]) => void;

/** What a transport looks like to the client: text frames in and out. */
interface Wire {
  kind: ChatTransport;
  send(frame: string): void;
  close(): void;
}

interface Pending {
  resolve: (ack: { id: number }) => void;
  reject: (e: ChatError) => void;
  timer: ReturnType<typeof setTimeout>;
}

const MAX_BACKOFF_MS = 15_000;
const PING_EVERY_MS = 20_000;
const SEND_TIMEOUT_MS = 10_000;

/** The live chat of one channel. */
export class Chat {
  /** Messages in id order. */
  readonly messages: ChatMessage[] = [];
  /** The last welcome: user, role, settings, pinned message, open polls, restriction. */
  welcome: Welcome | null = null;
  state: ChatState = "connecting";
  transport: ChatTransport | null = null;
  /** Messages that were missed while away (`history.truncated`). */
  truncated = false;

  private readonly base: string;
  private readonly handlers = new Map<keyof ChatEvents, Set<(d: never) => void>>();
  private readonly pending = new Map<string, Pending>();
  private wire: Wire | null = null;
  private attempt = 0;
  private nonce = 0;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private pingTimer?: ReturnType<typeof setInterval>;
  private authTimer?: ReturnType<typeof setTimeout>;
  private currentToken: string | null = null;
  private dataChannelFailed = false;
  /** The highest message id seen, deleted or not: the `since` of a reconnection. */
  private seen: number | undefined;

  constructor(
    readonly slug: string,
    private readonly options: ChatOptions = {},
  ) {
    this.base = options.base ?? location.origin;
  }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<K extends keyof ChatEvents>(event: K, handler: Handler<K>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as (d: never) => void);
    return () => set!.delete(handler as (d: never) => void);
  }

  /** Calls `cb` with every tip announced to the room; returns the function that stops it. */
  onTip(cb: (tip: Tip) => void): () => void {
    return this.on("tip", cb);
  }

  private emit<K extends keyof ChatEvents>(event: K, data: ChatEvents[K]): void {
    for (const h of this.handlers.get(event) ?? []) {
      try {
        (h as Handler<K>)(data);
      } catch (e) {
        console.error(`chat ${event} handler:`, e);
      }
    }
  }

  /** The id of the newest message held, if any. */
  get lastId(): number | undefined {
    return this.messages.length ? this.messages[this.messages.length - 1].id : undefined;
  }

  /** Opens the room. Resolves once welcomed, or rejects if the first attempt fails. */
  connect(): Promise<Welcome> {
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
  send(text: string, options: { replyTo?: number } = {}): Promise<{ id: number }> {
    if (!this.wire || this.state !== "open") {
      return Promise.reject(new ChatError("disconnected", "the chat is not connected"));
    }
    const nonce = `n${++this.nonce}-${Date.now().toString(36)}`;
    const frame: Record<string, unknown> = { type: "send", text, nonce };
    if (options.replyTo !== undefined) frame.reply_to = options.replyTo;
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
  auth(token: string): void {
    this.currentToken = token;
    this.scheduleAuth(token);
    if (this.state === "open") this.write({ type: "auth", token });
  }

  /** Leaves the room for good. */
  close(): void {
    this.setState("closed");
    clearTimeout(this.retryTimer);
    clearTimeout(this.authTimer);
    this.drop();
  }

  private setState(state: ChatState): void {
    if (this.state === "closed") return;
    this.state = state;
    this.emit("state", { state, transport: this.transport });
  }

  private write(frame: Record<string, unknown>): void {
    try {
      this.wire?.send(JSON.stringify(frame));
    } catch {
      this.lost();
    }
  }

  private async token(): Promise<string | null> {
    const t = this.options.token;
    const value = typeof t === "function" ? await t() : t;
    return value ?? null;
  }

  /** One connection attempt: the data channel when asked for and usable, else the WebSocket. */
  private async open(): Promise<void> {
    if (this.state === "closed") return;
    this.currentToken = await this.token().catch(() => null);
    const want = this.options.transport ?? "auto";
    const channel = this.options.session?.chatChannel;
    const useChannel =
      want === "datachannel" || (want === "auto" && !!channel && !this.dataChannelFailed);
    if (useChannel && channel) {
      const ok = await this.openDataChannel(channel);
      if (ok || (this.state as ChatState) === "closed") return;
      if (want === "datachannel") return this.lost();
      // Never opened, or no welcome on it: this server or path has none, use the WebSocket.
      this.dataChannelFailed = true;
    }
    this.openWebSocket();
  }

  private hello(): void {
    const frame: Record<string, unknown> = { type: "hello" };
    if (this.currentToken) frame.token = this.currentToken;
    if (this.seen !== undefined) frame.since = this.seen;
    this.write(frame);
  }

  /** Resolves true once welcomed on `dc`, false if it does not open or answer in time. */
  private openDataChannel(dc: RTCDataChannel): Promise<boolean> {
    const timeout = this.options.dataChannelTimeoutMs ?? 4000;
    return new Promise((resolve) => {
      let settled = false;
      const settle = (ok: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        offW();
        if (!ok) {
          dc.removeEventListener("message", onMessage);
          dc.removeEventListener("close", onClose);
          if (this.wire === wire) this.wire = null;
        }
        resolve(ok);
      };
      const timer = setTimeout(() => settle(false), timeout);
      const offW = this.on("welcome", () => settle(true));
      const onMessage = (e: MessageEvent) => {
        if (typeof e.data === "string") this.receive(e.data);
      };
      const onClose = () => {
        if (!settled) settle(false);
        else if (this.wire === wire) this.lost();
      };
      const wire: Wire = {
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
      if (dc.readyState === "open") start();
      else if (dc.readyState === "connecting") dc.addEventListener("open", start, { once: true });
      else settle(false);
    });
  }

  private openWebSocket(): void {
    const url = new URL(`/api/v1/channels/${encodeURIComponent(this.slug)}/chat/ws`, this.base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let ws: WebSocket;
    try {
      ws = new WebSocket(url.toString());
    } catch {
      return this.lost();
    }
    const wire: Wire = { kind: "websocket", send: (f) => ws.send(f), close: () => ws.close() };
    this.wire = wire;
    this.transport = "websocket";
    ws.onopen = () => this.hello();
    ws.onmessage = (e) => {
      if (typeof e.data === "string") this.receive(e.data);
    };
    ws.onclose = () => {
      if (this.wire !== wire) return;
      // Closed before any welcome: a browser does not say why, so ask whether the room exists.
      if (!this.welcome) void this.roomExists().then((yes) => (yes ? this.lost() : this.gone()));
      else this.lost();
    };
  }

  /** false when the server says the channel has no room (404); true otherwise. */
  private async roomExists(): Promise<boolean> {
    try {
      const url = new URL(`/api/v1/channels/${encodeURIComponent(this.slug)}/chat/settings`, this.base);
      return (await fetch(url)).status !== 404;
    } catch {
      return true;
    }
  }

  /** There is no room to join: say so and stop. */
  private gone(): void {
    this.drop();
    this.emit("error", new ChatError("not_found", "this stream has no chat", 404));
    this.close();
  }

  /** The connection is gone: fail what waits on it, then try again after a backoff. */
  private lost(): void {
    this.drop();
    if (this.state === "closed") return;
    this.setState("reconnecting");
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt++;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }

  private drop(): void {
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

  private receive(raw: string): void {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    this.dispatch(frame);
  }

  private dispatch(f: Record<string, any>): void {
    switch (f.type) {
      case "batch":
        for (const e of f.events ?? []) this.dispatch(e);
        return;
      case "welcome": {
        const w = f as unknown as Welcome;
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
        if (this.currentToken) this.scheduleAuth(this.currentToken);
        this.setState("open");
        this.emit("welcome", this.welcome);
        return;
      }
      case "history":
        if (f.truncated) {
          this.truncated = true;
          this.emit("truncated", true);
        }
        for (const m of f.messages ?? []) this.insert(m);
        return;
      case "message":
        this.insert(f.message);
        return;
      case "deleted": {
        const ids: number[] = f.ids ?? [];
        const gone = new Set(ids);
        for (let i = this.messages.length - 1; i >= 0; i--) {
          if (gone.has(this.messages[i].id)) this.messages.splice(i, 1);
        }
        if (this.welcome?.pinned && gone.has(this.welcome.pinned.id)) this.welcome.pinned = null;
        this.emit("deleted", ids);
        return;
      }
      case "pinned":
        if (this.welcome) this.welcome.pinned = f.message ?? null;
        this.emit("pinned", f.message ?? null);
        return;
      case "settings":
        if (this.welcome) this.welcome.settings = f.settings;
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
        if (f.tip) this.emit("tip", f.tip);
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
        } else {
          this.emit("error", err);
        }
        return;
      }
      default:
        return; // pong, and anything newer than this client
    }
  }

  /** Puts `m` in id order; a message already held is a duplicate and is dropped. */
  private insert(m: ChatMessage | undefined): void {
    if (!m || typeof m.id !== "number") return;
    if (this.seen === undefined || m.id > this.seen) this.seen = m.id;
    const list = this.messages;
    let i = list.length;
    while (i > 0 && list[i - 1].id > m.id) i--;
    if (i > 0 && list[i - 1].id === m.id) return;
    list.splice(i, 0, m);
    const keep = this.options.keep ?? 1000;
    if (list.length > keep) list.splice(0, list.length - keep);
    if (list.includes(m)) this.emit("message", m);
  }

  /** Re-authenticates a minute before a JWT access token expires, with a fresh one. */
  private scheduleAuth(token: string): void {
    clearTimeout(this.authTimer);
    if (typeof this.options.token !== "function") return;
    const exp = jwtExpiry(token);
    if (!exp) return;
    const wait = Math.max(5_000, exp - Date.now() - 60_000);
    this.authTimer = setTimeout(async () => {
      const fresh = await this.token().catch(() => null);
      if (fresh && fresh !== this.currentToken) this.auth(fresh);
      else if (fresh) this.scheduleAuth(fresh);
    }, wait);
  }
}

/** A JWT's `exp` in milliseconds, or undefined when `token` is not one. */
export function jwtExpiry(token: string): number | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

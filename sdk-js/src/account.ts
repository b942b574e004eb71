// The control plane's API from the browser: accounts, channels, stream keys and viewer
// tokens (a channel's chat, moderation, polls, surveys and Q&A: `channel(slug)`). Tokens are kept in localStorage; an expired access token is refreshed once,
// transparently, with the (single-use, rotated) refresh token.

import { CascadeApiError, SubscriptionRequiredError, problemError } from "./errors.js";

/** An RFC 9457 problem returned by `/api/v1`: its status, detail and `code`. */
export class ApiProblem extends CascadeApiError {
  constructor(status: number, detail: string, code = "", requestId = "") {
    super(status, detail, code, requestId);
    this.name = "ApiProblem";
  }
}

export interface User {
  id: string;
  email: string;
  username: string;
  display_name: string;
  bio: string;
  avatar_url: string;
  role: "viewer" | "broadcaster" | "moderator" | "admin";
  status: "active" | "suspended";
}

export interface Channel {
  id: string;
  slug: string;
  title: string;
  description: string;
  tags: string[];
  category: string;
  visibility: "public" | "unlisted" | "private";
  owner: string;
  whip_path: string;
  whep_path: string;
}

export interface NewStreamKey {
  id: string;
  key: string;
  label: string;
  masked: string;
  whip_path: string;
}

interface Stored {
  access_token: string;
  refresh_token: string;
  user: User;
}

import { ChannelApi } from "./channel.js";
import { jwtExpiry } from "./chat.js";

const STORE = "cascade.session";
/** How long a tab that rotated a refresh token tells the others (and they wait for it). */
const ROTATION_MARK_MS = 5000;

/** A signed-in (or not yet) user of one Cascade server. */
export class Account {
  constructor(readonly base: string = location.origin) {}

  private get stored(): Stored | null {
    const raw = localStorage.getItem(STORE);
    return raw ? (JSON.parse(raw) as Stored) : null;
  }

  private set stored(s: Stored | null) {
    if (s) localStorage.setItem(STORE, JSON.stringify(s));
    else localStorage.removeItem(STORE);
  }

  /** The user last seen, if signed in. */
  get user(): User | null {
    return this.stored?.user ?? null;
  }

  /**
   * The current access token (refreshed first when it expires within 30 s), or null when
   * signed out. For a {@link Chat}: `new Chat(slug, { token: () => account.accessToken() })`.
   */
  async accessToken(): Promise<string | null> {
    const s = this.stored;
    if (!s) return null;
    const exp = jwtExpiry(s.access_token);
    if (exp !== undefined && exp - Date.now() < 30_000 && !(await this.refresh(s))) return null;
    return this.stored?.access_token ?? null;
  }

  /** A channel's chat, moderation, polls, surveys and Q&A over REST, as this user. */
  channel(slug: string): ChannelApi {
    return new ChannelApi(this, slug);
  }

  private async send(method: string, path: string, body?: unknown, bearer?: string, extra?: Record<string, string>): Promise<Response> {
    const headers: Record<string, string> = { ...extra };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (bearer) headers["authorization"] = `Bearer ${bearer}`;
    return fetch(`${this.base}/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  private async parse<T>(resp: Response): Promise<T> {
    if (!resp.ok) {
      const e = problemError(resp.status, await resp.text().catch(() => ""), resp.statusText);
      // A paywall's refusal is typed; every other refusal is an ApiProblem (with its code).
      throw e instanceof SubscriptionRequiredError ? e : new ApiProblem(e.status, e.detail, e.code, e.requestId);
    }
    // 204, or a 201 with no body (a survey response): nothing to parse.
    const text = resp.status === 204 ? "" : await resp.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Calls the API as the signed-in user, refreshing the session once if needed; `headers`
   * adds request headers (an `Idempotency-Key`).
   */
  async call<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    const s = this.stored;
    let resp = await this.send(method, path, body, s?.access_token, headers);
    if (resp.status === 401 && s && (await this.refresh(s))) {
      resp = await this.send(method, path, body, this.stored?.access_token, headers);
    }
    return this.parse<T>(resp);
  }

  /** GETs `path` as the signed-in user and returns the body as it is (a CSV export). */
  async download(path: string): Promise<Blob> {
    const s = this.stored;
    let resp = await this.send("GET", path, undefined, s?.access_token);
    if (resp.status === 401 && s && (await this.refresh(s))) {
      resp = await this.send("GET", path, undefined, this.stored?.access_token);
    }
    if (!resp.ok) await this.parse(resp);
    return resp.blob();
  }

  /**
   * Replaces the session `used` with a fresh pair. Refresh tokens are single use and a
   * second use signs the whole session out, so tabs sharing the stored session take
   * turns (a Web Lock). localStorage reaches other tabs late, the lock manager does not:
   * the tab that rotates a token first holds a lock named after it for a while, and a tab
   * that finds it held waits for the new pair to show up instead of spending the old one.
   */
  private async refresh(used: Stored): Promise<boolean> {
    const locks = (navigator as Navigator & { locks?: LockManager }).locks;
    // Web Locks exist in secure contexts (https, localhost); elsewhere tabs race as before.
    if (!locks) return this.rotate(used);
    const rotated = `${STORE}.rotated.${used.refresh_token.slice(-22)}`;
    return locks.request(`${STORE}.refresh`, async () => {
      const s = this.stored;
      if (!s) return false;
      if (s.refresh_token !== used.refresh_token) return true;
      const state = await locks.query();
      if (state.held?.some((l) => l.name === rotated)) return this.awaitRotation(used);
      await new Promise<void>((granted) => {
        void locks.request(rotated, () => {
          granted();
          return new Promise((r) => setTimeout(r, ROTATION_MARK_MS));
        });
      });
      return this.rotate(used);
    });
  }

  /** Spends the stored refresh token for a new pair. */
  private async rotate(used: Stored): Promise<boolean> {
    const resp = await this.send("POST", "/auth/refresh", { refresh_token: used.refresh_token });
    if (!resp.ok) {
      // Forget the session only if it is still the one that failed.
      if (this.stored?.refresh_token === used.refresh_token) this.stored = null;
      return false;
    }
    this.stored = (await resp.json()) as Stored;
    return true;
  }

  /** Waits for another tab's new pair to reach this tab's localStorage. */
  private async awaitRotation(used: Stored): Promise<boolean> {
    const end = Date.now() + ROTATION_MARK_MS;
    while (Date.now() < end) {
      const s = this.stored;
      if (!s) return false;
      if (s.refresh_token !== used.refresh_token) return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  }

  /** Creates an account, then signs in to it. */
  async signUp(email: string, username: string, password: string): Promise<User> {
    await this.parse(await this.send("POST", "/auth/signup", { email, username, password }));
    return this.signIn(username, password);
  }

  /** Signs in with an email address or username. */
  async signIn(login: string, password: string): Promise<User> {
    const pair = await this.parse<Stored>(await this.send("POST", "/auth/signin", { login, password }));
    this.stored = pair;
    return pair.user;
  }

  /** Signs out this browser. */
  async signOut(): Promise<void> {
    const s = this.stored;
    this.stored = null;
    if (s) await this.send("POST", "/auth/signout", { refresh_token: s.refresh_token });
  }

  /** Signs out every session of this user, everywhere. */
  async signOutEverywhere(): Promise<void> {
    await this.call("POST", "/auth/signout-all");
    this.stored = null;
  }

  async me(): Promise<User> {
    const user = await this.call<User>("GET", "/me");
    const s = this.stored;
    if (s) this.stored = { ...s, user };
    return user;
  }

  async editProfile(fields: Partial<Pick<User, "display_name" | "bio" | "avatar_url">>): Promise<User> {
    await this.call<User>("PATCH", "/me", fields);
    return this.me();
  }

  /** Changes the password; other sessions end, this one continues with new tokens. */
  async changePassword(current_password: string, new_password: string): Promise<void> {
    this.stored = await this.call<Stored>("PUT", "/me/password", { current_password, new_password });
  }

  /** Changes the email address; other sessions end, this one continues. */
  async changeEmail(current_password: string, email: string): Promise<void> {
    this.stored = await this.call<Stored>("PUT", "/me/email", { current_password, email });
  }

  /** Deletes the account and everything it owns. */
  async deleteAccount(current_password: string): Promise<void> {
    await this.call("DELETE", "/me", { current_password });
    this.stored = null;
  }

  async myChannels(): Promise<Channel[]> {
    return (await this.call<{ items: Channel[] }>("GET", "/me/channels?per_page=100")).items;
  }

  async createChannel(c: { slug: string; title: string; visibility?: Channel["visibility"] }): Promise<Channel> {
    return this.call<Channel>("POST", "/channels", c);
  }

  /** A new stream key: the only time the key itself is returned. */
  async createKey(slug: string, label = ""): Promise<NewStreamKey> {
    return this.call<NewStreamKey>("POST", `/channels/${encodeURIComponent(slug)}/keys`, { label });
  }

  /** A token to watch `slug` over WHEP, or null when the server has no such channel. */
  async viewerToken(slug: string): Promise<string | null> {
    try {
      const t = await this.call<{ token: string }>("POST", `/channels/${encodeURIComponent(slug)}/viewer-token`);
      return t.token;
    } catch (e) {
      if (e instanceof ApiProblem && e.status === 404) return null;
      throw e;
    }
  }
}

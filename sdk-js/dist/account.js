// The control plane's API from the browser: accounts, channels, stream keys and viewer
// tokens (a channel's chat, moderation, polls, surveys and Q&A: `channel(slug)`). Tokens are kept in localStorage; an expired access token is refreshed once,
// transparently, with the (single-use, rotated) refresh token.
import { CascadeApiError, SubscriptionRequiredError, problemError } from "./errors.js";
/** An RFC 9457 problem returned by `/api/v1`: its status, detail and `code`. */
export class ApiProblem extends CascadeApiError {
    constructor(status, detail, code = "", requestId = "") {
        super(status, detail, code, requestId);
        this.name = "ApiProblem";
    }
}
import { ChannelApi } from "./channel.js";
import { jwtExpiry } from "./chat.js";
const STORE = "cascade.session";
/** How long a tab that rotated a refresh token tells the others (and they wait for it). */
const ROTATION_MARK_MS = 5000;
/** A signed-in (or not yet) user of one Cascade server. */
export class Account {
    constructor(base = location.origin) {
        this.base = base;
    }
    get stored() {
        const raw = localStorage.getItem(STORE);
        return raw ? JSON.parse(raw) : null;
    }
    set stored(s) {
        if (s)
            localStorage.setItem(STORE, JSON.stringify(s));
        else
            localStorage.removeItem(STORE);
    }
    /** The user last seen, if signed in. */
    get user() {
        return this.stored?.user ?? null;
    }
    /**
     * The current access token (refreshed first when it expires within 30 s), or null when
     * signed out. For a {@link Chat}: `new Chat(slug, { token: () => account.accessToken() })`.
     */
    async accessToken() {
        const s = this.stored;
        if (!s)
            return null;
        const exp = jwtExpiry(s.access_token);
        if (exp !== undefined && exp - Date.now() < 30000 && !(await this.refresh(s)))
            return null;
        return this.stored?.access_token ?? null;
    }
    /** A channel's chat, moderation, polls, surveys and Q&A over REST, as this user. */
    channel(slug) {
        return new ChannelApi(this, slug);
    }
    async send(method, path, body, bearer, extra) {
        const headers = { ...extra };
        if (body !== undefined)
            headers["content-type"] = "application/json";
        if (bearer)
            headers["authorization"] = `Bearer ${bearer}`;
        return fetch(`${this.base}/api/v1${path}`, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
        });
    }
    async parse(resp) {
        if (!resp.ok) {
            const e = problemError(resp.status, await resp.text().catch(() => ""), resp.statusText);
            // A paywall's refusal is typed; every other refusal is an ApiProblem (with its code).
            throw e instanceof SubscriptionRequiredError ? e : new ApiProblem(e.status, e.detail, e.code, e.requestId);
        }
        // 204, or a 201 with no body (a survey response): nothing to parse.
        const text = resp.status === 204 ? "" : await resp.text();
        return (text ? JSON.parse(text) : undefined);
    }
    /**
     * Calls the API as the signed-in user, refreshing the session once if needed; `headers`
     * adds request headers (an `Idempotency-Key`).
     */
    async call(method, path, body, headers) {
        const s = this.stored;
        let resp = await this.send(method, path, body, s?.access_token, headers);
        if (resp.status === 401 && s && (await this.refresh(s))) {
            resp = await this.send(method, path, body, this.stored?.access_token, headers);
        }
        return this.parse(resp);
    }
    /** GETs `path` as the signed-in user and returns the body as it is (a CSV export). */
    async download(path) {
        const s = this.stored;
        let resp = await this.send("GET", path, undefined, s?.access_token);
        if (resp.status === 401 && s && (await this.refresh(s))) {
            resp = await this.send("GET", path, undefined, this.stored?.access_token);
        }
        if (!resp.ok)
            await this.parse(resp);
        return resp.blob();
    }
    /**
     * Replaces the session `used` with a fresh pair. Refresh tokens are single use and a
     * second use signs the whole session out, so tabs sharing the stored session take
     * turns (a Web Lock). localStorage reaches other tabs late, the lock manager does not:
     * the tab that rotates a token first holds a lock named after it for a while, and a tab
     * that finds it held waits for the new pair to show up instead of spending the old one.
     */
    async refresh(used) {
        const locks = navigator.locks;
        // Web Locks exist in secure contexts (https, localhost); elsewhere tabs race as before.
        if (!locks)
            return this.rotate(used);
        const rotated = `${STORE}.rotated.${used.refresh_token.slice(-22)}`;
        return locks.request(`${STORE}.refresh`, async () => {
            const s = this.stored;
            if (!s)
                return false;
            if (s.refresh_token !== used.refresh_token)
                return true;
            const state = await locks.query();
            if (state.held?.some((l) => l.name === rotated))
                return this.awaitRotation(used);
            await new Promise((granted) => {
                void locks.request(rotated, () => {
                    granted();
                    return new Promise((r) => setTimeout(r, ROTATION_MARK_MS));
                });
            });
            return this.rotate(used);
        });
    }
    /** Spends the stored refresh token for a new pair. */
    async rotate(used) {
        const resp = await this.send("POST", "/auth/refresh", { refresh_token: used.refresh_token });
        if (!resp.ok) {
            // Forget the session only if it is still the one that failed.
            if (this.stored?.refresh_token === used.refresh_token)
                this.stored = null;
            return false;
        }
        this.stored = (await resp.json());
        return true;
    }
    /** Waits for another tab's new pair to reach this tab's localStorage. */
    async awaitRotation(used) {
        const end = Date.now() + ROTATION_MARK_MS;
        while (Date.now() < end) {
            const s = this.stored;
            if (!s)
                return false;
            if (s.refresh_token !== used.refresh_token)
                return true;
            await new Promise((r) => setTimeout(r, 25));
        }
        return false;
    }
    /** Creates an account, then signs in to it. */
    async signUp(email, username, password) {
        await this.parse(await this.send("POST", "/auth/signup", { email, username, password }));
        return this.signIn(username, password);
    }
    /** Signs in with an email address or username. */
    async signIn(login, password) {
        const pair = await this.parse(await this.send("POST", "/auth/signin", { login, password }));
        this.stored = pair;
        return pair.user;
    }
    /** Signs out this browser. */
    async signOut() {
        const s = this.stored;
        this.stored = null;
        if (s)
            await this.send("POST", "/auth/signout", { refresh_token: s.refresh_token });
    }
    /** Signs out every session of this user, everywhere. */
    async signOutEverywhere() {
        await this.call("POST", "/auth/signout-all");
        this.stored = null;
    }
    async me() {
        const user = await this.call("GET", "/me");
        const s = this.stored;
        if (s)
            this.stored = { ...s, user };
        return user;
    }
    async editProfile(fields) {
        await this.call("PATCH", "/me", fields);
        return this.me();
    }
    /** Changes the password; other sessions end, this one continues with new tokens. */
    async changePassword(current_password, new_password) {
        this.stored = await this.call("PUT", "/me/password", { current_password, new_password });
    }
    /** Changes the email address; other sessions end, this one continues. */
    async changeEmail(current_password, email) {
        this.stored = await this.call("PUT", "/me/email", { current_password, email });
    }
    /** Deletes the account and everything it owns. */
    async deleteAccount(current_password) {
        await this.call("DELETE", "/me", { current_password });
        this.stored = null;
    }
    async myChannels() {
        return (await this.call("GET", "/me/channels?per_page=100")).items;
    }
    async createChannel(c) {
        return this.call("POST", "/channels", c);
    }
    /** A new stream key: the only time the key itself is returned. */
    async createKey(slug, label = "") {
        return this.call("POST", `/channels/${encodeURIComponent(slug)}/keys`, { label });
    }
    /** A token to watch `slug` over WHEP, or null when the server has no such channel. */
    async viewerToken(slug) {
        try {
            const t = await this.call("POST", `/channels/${encodeURIComponent(slug)}/viewer-token`);
            return t.token;
        }
        catch (e) {
            if (e instanceof ApiProblem && e.status === 404)
                return null;
            throw e;
        }
    }
}

import { CascadeApiError } from "./errors.js";
/** An RFC 9457 problem returned by `/api/v1`: its status, detail and `code`. */
export declare class ApiProblem extends CascadeApiError {
    constructor(status: number, detail: string, code?: string, requestId?: string);
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
import { ChannelApi } from "./channel.js";
/** A signed-in (or not yet) user of one Cascade server. */
export declare class Account {
    readonly base: string;
    constructor(base?: string);
    private get stored();
    private set stored(value);
    /** The user last seen, if signed in. */
    get user(): User | null;
    /**
     * The current access token (refreshed first when it expires within 30 s), or null when
     * signed out. For a {@link Chat}: `new Chat(slug, { token: () => account.accessToken() })`.
     */
    accessToken(): Promise<string | null>;
    /** A channel's chat, moderation, polls, surveys and Q&A over REST, as this user. */
    channel(slug: string): ChannelApi;
    private send;
    private parse;
    /**
     * Calls the API as the signed-in user, refreshing the session once if needed; `headers`
     * adds request headers (an `Idempotency-Key`).
     */
    call<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
    /** GETs `path` as the signed-in user and returns the body as it is (a CSV export). */
    download(path: string): Promise<Blob>;
    /**
     * Replaces the session `used` with a fresh pair. Refresh tokens are single use and a
     * second use signs the whole session out, so tabs sharing the stored session take
     * turns (a Web Lock). localStorage reaches other tabs late, the lock manager does not:
     * the tab that rotates a token first holds a lock named after it for a while, and a tab
     * that finds it held waits for the new pair to show up instead of spending the old one.
     */
    private refresh;
    /** Spends the stored refresh token for a new pair. */
    private rotate;
    /** Waits for another tab's new pair to reach this tab's localStorage. */
    private awaitRotation;
    /** Creates an account, then signs in to it. */
    signUp(email: string, username: string, password: string): Promise<User>;
    /** Signs in with an email address or username. */
    signIn(login: string, password: string): Promise<User>;
    /** Signs out this browser. */
    signOut(): Promise<void>;
    /** Signs out every session of this user, everywhere. */
    signOutEverywhere(): Promise<void>;
    me(): Promise<User>;
    editProfile(fields: Partial<Pick<User, "display_name" | "bio" | "avatar_url">>): Promise<User>;
    /** Changes the password; other sessions end, this one continues with new tokens. */
    changePassword(current_password: string, new_password: string): Promise<void>;
    /** Changes the email address; other sessions end, this one continues. */
    changeEmail(current_password: string, email: string): Promise<void>;
    /** Deletes the account and everything it owns. */
    deleteAccount(current_password: string): Promise<void>;
    myChannels(): Promise<Channel[]>;
    createChannel(c: {
        slug: string;
        title: string;
        visibility?: Channel["visibility"];
    }): Promise<Channel>;
    /** A new stream key: the only time the key itself is returned. */
    createKey(slug: string, label?: string): Promise<NewStreamKey>;
    /** A token to watch `slug` over WHEP, or null when the server has no such channel. */
    viewerToken(slug: string): Promise<string | null>;
}

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
export declare class ChatError extends Error {
    readonly code: string;
    readonly detail: string;
    readonly status: number;
    /** Seconds to wait before trying again (`timed_out`, `slow_mode`, `flood`). */
    readonly retryAfter?: number | undefined;
    constructor(code: string, detail: string, status?: number, 
    /** Seconds to wait before trying again (`timed_out`, `slow_mode`, `flood`). */
    retryAfter?: number | undefined);
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
    state: {
        state: ChatState;
        transport: ChatTransport | null;
    };
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
/** The live chat of one channel. */
export declare class Chat {
    readonly slug: string;
    private readonly options;
    /** Messages in id order. */
    readonly messages: ChatMessage[];
    /** The last welcome: user, role, settings, pinned message, open polls, restriction. */
    welcome: Welcome | null;
    state: ChatState;
    transport: ChatTransport | null;
    /** Messages that were missed while away (`history.truncated`). */
    truncated: boolean;
    private readonly base;
    private readonly handlers;
    private readonly pending;
    private wire;
    private attempt;
    private nonce;
    private retryTimer?;
    private pingTimer?;
    private authTimer?;
    private currentToken;
    private dataChannelFailed;
    /** The highest message id seen, deleted or not: the `since` of a reconnection. */
    private seen;
    constructor(slug: string, options?: ChatOptions);
    /** Subscribes to an event; returns the function that unsubscribes. */
    on<K extends keyof ChatEvents>(event: K, handler: Handler<K>): () => void;
    /** Calls `cb` with every tip announced to the room; returns the function that stops it. */
    onTip(cb: (tip: Tip) => void): () => void;
    private emit;
    /** The id of the newest message held, if any. */
    get lastId(): number | undefined;
    /** Opens the room. Resolves once welcomed, or rejects if the first attempt fails. */
    connect(): Promise<Welcome>;
    /**
     * Posts `text`; resolves with the new message's id when the server acknowledges it,
     * rejects with a {@link ChatError} (`timed_out`, `slow_mode`, …, or `disconnected`).
     */
    send(text: string, options?: {
        replyTo?: number;
    }): Promise<{
        id: number;
    }>;
    /** Sends a refreshed access token (the server answers with a new `welcome`). */
    auth(token: string): void;
    /** Leaves the room for good. */
    close(): void;
    private setState;
    private write;
    private token;
    /** One connection attempt: the data channel when asked for and usable, else the WebSocket. */
    private open;
    private hello;
    /** Resolves true once welcomed on `dc`, false if it does not open or answer in time. */
    private openDataChannel;
    private openWebSocket;
    /** false when the server says the channel has no room (404); true otherwise. */
    private roomExists;
    /** There is no room to join: say so and stop. */
    private gone;
    /** The connection is gone: fail what waits on it, then try again after a backoff. */
    private lost;
    private drop;
    private receive;
    private dispatch;
    /** Puts `m` in id order; a message already held is a duplicate and is dropped. */
    private insert;
    /** Re-authenticates a minute before a JWT access token expires, with a fresh one. */
    private scheduleAuth;
}
/** A JWT's `exp` in milliseconds, or undefined when `token` is not one. */
export declare function jwtExpiry(token: string): number | undefined;
export {};

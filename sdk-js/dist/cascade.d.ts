import { CascadeApiError } from "./errors.js";
export { paintClock, readClock, clockRegion, sampleFrames } from "./clock.js";
export { Account, ApiProblem } from "./account.js";
export { CascadeApiError, SubscriptionRequiredError } from "./errors.js";
export { Money, formatMoney, idempotencyKey } from "./money.js";
export type { Tier, Subscription, Tip, Balance, Paywall, PaymentsConfig, Badge } from "./money.js";
export { Integrations, WEBHOOK_EVENTS, API_KEY_SCOPES } from "./integrations.js";
export type { WebhookEndpoint, NewWebhookEndpoint, WebhookDelivery, ApiKey, NewApiKey } from "./integrations.js";
export type { User, Channel, NewStreamKey } from "./account.js";
export { Chat, ChatError, jwtExpiry } from "./chat.js";
export type { ChatEvents, ChatMessage, ChatMode, ChatOptions, ChatRole, ChatSettings, ChatState, ChatTransport, ChatUser, Poll, PollOption, Question, Restriction, Survey, SurveyQuestion, Welcome, } from "./chat.js";
export { ChannelApi } from "./channel.js";
export { startsIn, isAdBreak, isSponsorSlot, reached, BreakStarts, FRAME_WAIT_MS } from "./ads.js";
export type { AdBreak, SponsorSlot, AdBreakHandler, SponsorHandler, AdStart, AdStartHandler } from "./ads.js";
export { StallClock, PlaybackReporter, sessionOf, REPORT_EVERY_MS } from "./stats.js";
export type { PlaybackTotals } from "./stats.js";
import type { AdBreakHandler, AdStartHandler, SponsorHandler } from "./ads.js";
import { PlaybackReporter } from "./stats.js";
export type { Ban, BlockedTerm, ModLogEntry, Moderator, Report } from "./channel.js";
/** One simulcast encoding the publisher sends. */
export interface Encoding {
    rid: string;
    scaleResolutionDownBy: number;
    maxBitrate: number;
}
/** The default ladder: 1/4, 1/2 and full resolution. */
export declare const DEFAULT_LADDER: Encoding[];
export interface PublishOptions {
    /** Bearer token: the stream key. */
    token?: string;
    /** true (the default ladder), false (one encoding), or a ladder of your own. */
    simulcast?: boolean | Encoding[];
    /** STUN/TURN servers; those the server announces in Link headers are added. */
    iceServers?: RTCIceServer[];
    /** Preferred video codec, e.g. "video/VP8" (the default) or "video/H264". */
    codec?: string;
    /** Open the `chat` data channel in the same offer (default true); see {@link Session.chatChannel}. */
    chat?: boolean;
}
export interface PlayOptions {
    token?: string;
    /** "auto" (default), "low", "mid", "high" or a publisher's RID. */
    layer?: string;
    iceServers?: RTCIceServer[];
    /** Called for each server-sent event; see {@link EventHandler}. */
    onEvent?: EventHandler;
    /** Open the `chat` data channel in the same offer (default true); see {@link Session.chatChannel}. */
    chat?: boolean;
    /** Report stalls and frames every 10 s for the channel's analytics (default true). */
    stats?: boolean;
}
/** The stream's events every viewer is sent. */
export declare const STREAM_EVENTS: readonly ["active", "inactive", "layers", "viewercount"];
/**
 * The viewer's own events: `paused` (its path carries not even the lowest video layer; audio
 * goes on), `resumed` (video is back), `allocation` (`{ rank }`, 0 = the lowest layer: the
 * layer the node's bandwidth estimate for this viewer now picks).
 */
export declare const VIEWER_EVENTS: readonly ["paused", "resumed", "allocation"];
/**
 * Cues every viewer is told at once: `adbreak` ({@link AdBreak}: every player starts it on
 * the same frame, `rtp_timestamp`, else at `starts_at`; `skip` for an ad-free subscriber)
 * and `sponsor` ({@link SponsorSlot}).
 */
export declare const CUE_EVENTS: readonly ["adbreak", "sponsor"];
/** The name of a server-sent event; `move` means the session moves to another node. */
export type EventName = (typeof STREAM_EVENTS)[number] | (typeof VIEWER_EVENTS)[number] | (typeof CUE_EVENTS)[number] | "move" | "ended";
/**
 * Called for each server-sent event with its parsed JSON data:
 * - `active`, `inactive` (`{}`): the publisher is live, or gone;
 * - `layers` (`{ video: { active: [{ encodingId, rank, bitrate }], inactive } }`);
 * - `viewercount` (`{ viewercount }`);
 * - `paused`, `resumed` (`{}`), `allocation` (`{ rank }`): see {@link VIEWER_EVENTS};
 * - `adbreak` ({@link AdBreak}), `sponsor` ({@link SponsorSlot}): see {@link CUE_EVENTS};
 * - `move` (`null`): the node is drained and the player joins another;
 * - `ended` (`null`): the server ended this session (its token was revoked, the channel's
 *   paywall closed, a ban): the session is closed here too; join again to learn why.
 */
export type EventHandler = (name: EventName, data: unknown) => void;
/**
 * A WHIP/WHEP refusal, with its status and reason (and its problem `code` when it has one).
 * A paywalled stream's refusal is a {@link SubscriptionRequiredError} instead; both are
 * {@link CascadeApiError}s.
 */
export declare class CascadeError extends CascadeApiError {
    constructor(status: number, message: string, code?: string, requestId?: string);
}
/** Where a session lives: its connection, its resource and the links it was offered. */
interface Placement {
    pc: RTCPeerConnection;
    location: string;
    links: Map<string, string>;
    chat?: RTCDataChannel;
}
/** A live WHIP or WHEP session. */
export declare class Session {
    /** The connection (replaced when the session moves to another node). */
    pc: RTCPeerConnection;
    /** Absolute URL of the session resource. */
    location: string;
    /** Links the server offered (rel -> absolute URL). */
    links: Map<string, string>;
    private readonly token?;
    private stopped;
    private events?;
    private onEvent?;
    private readonly adHandlers;
    private readonly adStartHandlers;
    /** Breaks told (by id, the newest 64): `onAdBreak` hears each once. */
    private readonly toldBreaks;
    private readonly breaks;
    private breakTimer?;
    private frameLoop;
    /** The element the stream plays in (WHEP, from {@link play}): breaks start on its frames. */
    video?: HTMLVideoElement;
    private readonly sponsorHandlers;
    /** Reports playback for analytics (WHEP, unless `stats: false`). */
    reporter?: PlaybackReporter;
    /** Joins again through the first URL (a cluster places the viewer anew). */
    rejoin?: () => Promise<Placement>;
    /** Times the session moved to another node (a drained one said `move`). */
    moves: number;
    /**
     * The channel room's data channel (label `chat`), opened in the session's offer unless
     * the `chat` option was false; a {@link Chat} given this session talks over it. Replaced
     * when the session moves to another node.
     */
    chatChannel?: RTCDataChannel;
    constructor(
    /** The connection (replaced when the session moves to another node). */
    pc: RTCPeerConnection, 
    /** Absolute URL of the session resource. */
    location: string, 
    /** Links the server offered (rel -> absolute URL). */
    links: Map<string, string>, token?: string | undefined);
    /**
     * The node is drained: join again through the cluster (a 307 to another edge), switch
     * the picture to the new connection, then leave the old one. The viewer sees at most
     * the new connection's first keyframe.
     */
    private move;
    /** Asks for another video layer (WHEP only). */
    selectLayer(layer: string): Promise<void>;
    /** Follows the stream's server-sent events (WHEP only). */
    listen(onEvent: EventHandler): void;
    /**
     * Calls `cb` once for each ad break when it is announced, with the milliseconds until
     * its `starts_at` (the wall clock). To start the slot on the same frame as every other
     * viewer, use {@link Session.onAdBreakStart}. When `skip` is true the viewer's tier skips
     * ads. Returns a function that removes `cb`.
     */
    onAdBreak(cb: AdBreakHandler): () => void;
    /**
     * Calls `cb` once for each ad break when it starts here: when the video element
     * presents the frame the server named (`rtp_timestamp`, read from each frame's
     * `requestVideoFrameCallback` metadata), so every viewer starts on the same frame of the
     * stream whatever its delay; at `starts_at` by the wall clock when no frame is named,
     * the browser reports no timestamps, or the frame does not come (see {@link AdStart}).
     * Returns a function that removes `cb`.
     */
    onAdBreakStart(cb: AdStartHandler): () => void;
    /** Calls `cb` when a sponsor's overlay starts or ends. Returns a function that removes `cb`. */
    onSponsor(cb: SponsorHandler): () => void;
    private cue;
    /** Watches the frames (while a break waits for one) and the clock for breaks' starts. */
    private scheduleBreaks;
    private startBreaks;
    /** The server ended the session: close what is left of it here. */
    private ended;
    /** Ends the session on the server and closes the connection. Safe to call twice. */
    stop(): Promise<void>;
}
/** Parses `Link` headers into rel -> absolute URL (first of each rel). */
export declare function parseLinks(header: string | null, base: string): Map<string, string>;
/** Publishes `media` to the WHIP endpoint `url`. */
export declare function publish(url: string, media: MediaStream, options?: PublishOptions): Promise<Session>;
/** Plays the WHEP endpoint `url` into `video`. */
export declare function play(url: string, video: HTMLVideoElement, options?: PlayOptions): Promise<Session>;

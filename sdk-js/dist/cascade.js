// Cascade browser SDK: publish a MediaStream over WHIP, play a stream over WHEP.
// Both follow the same steps: build an RTCPeerConnection, gather candidates, POST the
// offer, apply the answer, and DELETE the resource on stop.
import { CascadeApiError, SubscriptionRequiredError, problemError } from "./errors.js";
export { paintClock, readClock, clockRegion, sampleFrames } from "./clock.js";
export { Account, ApiProblem } from "./account.js";
export { CascadeApiError, SubscriptionRequiredError } from "./errors.js";
export { Money, formatMoney, idempotencyKey } from "./money.js";
export { Integrations, WEBHOOK_EVENTS, API_KEY_SCOPES } from "./integrations.js";
export { Chat, ChatError, jwtExpiry } from "./chat.js";
export { ChannelApi } from "./channel.js";
export { startsIn, isAdBreak, isSponsorSlot, reached, BreakStarts, FRAME_WAIT_MS } from "./ads.js";
export { StallClock, PlaybackReporter, sessionOf, REPORT_EVERY_MS } from "./stats.js";
import { BreakStarts, isAdBreak, isSponsorSlot, startsIn } from "./ads.js";
import { PlaybackReporter } from "./stats.js";
/** The default ladder: 1/4, 1/2 and full resolution. */
export const DEFAULT_LADDER = [
    { rid: "l", scaleResolutionDownBy: 4, maxBitrate: 150000 },
    { rid: "m", scaleResolutionDownBy: 2, maxBitrate: 500000 },
    { rid: "h", scaleResolutionDownBy: 1, maxBitrate: 1200000 },
];
/** The stream's events every viewer is sent. */
export const STREAM_EVENTS = ["active", "inactive", "layers", "viewercount"];
/**
 * The viewer's own events: `paused` (its path carries not even the lowest video layer; audio
 * goes on), `resumed` (video is back), `allocation` (`{ rank }`, 0 = the lowest layer: the
 * layer the node's bandwidth estimate for this viewer now picks).
 */
export const VIEWER_EVENTS = ["paused", "resumed", "allocation"];
/**
 * Cues every viewer is told at once: `adbreak` ({@link AdBreak}: every player starts it on
 * the same frame, `rtp_timestamp`, else at `starts_at`; `skip` for an ad-free subscriber)
 * and `sponsor` ({@link SponsorSlot}).
 */
export const CUE_EVENTS = ["adbreak", "sponsor"];
/**
 * A WHIP/WHEP refusal, with its status and reason (and its problem `code` when it has one).
 * A paywalled stream's refusal is a {@link SubscriptionRequiredError} instead; both are
 * {@link CascadeApiError}s.
 */
export class CascadeError extends CascadeApiError {
    constructor(status, message, code = "", requestId = "") {
        super(status, message, code, requestId);
        this.message = `${status}: ${message}`;
        this.name = "CascadeError";
    }
}
/** A live WHIP or WHEP session. */
export class Session {
    constructor(
    /** The connection (replaced when the session moves to another node). */
    pc, 
    /** Absolute URL of the session resource. */
    location, 
    /** Links the server offered (rel -> absolute URL). */
    links, token) {
        this.pc = pc;
        this.location = location;
        this.links = links;
        this.token = token;
        this.stopped = false;
        this.adHandlers = new Set();
        this.adStartHandlers = new Set();
        /** Breaks told (by id, the newest 64): `onAdBreak` hears each once. */
        this.toldBreaks = new Set();
        this.breaks = new BreakStarts();
        this.frameLoop = false;
        this.sponsorHandlers = new Set();
        /** Times the session moved to another node (a drained one said `move`). */
        this.moves = 0;
    }
    /**
     * The node is drained: join again through the cluster (a 307 to another edge), switch
     * the picture to the new connection, then leave the old one. The viewer sees at most
     * the new connection's first keyframe.
     */
    async move() {
        if (!this.rejoin || this.stopped)
            return;
        const old = { pc: this.pc, location: this.location, links: this.links, chat: this.chatChannel };
        let next;
        try {
            next = await this.rejoin();
        }
        catch {
            return; // Stay where we are: the drained node keeps serving us.
        }
        this.pc = next.pc;
        this.location = next.location;
        this.links = next.links;
        this.chatChannel = next.chat;
        this.moves++;
        this.events?.close();
        this.events = undefined;
        this.reporter?.moved(next.location);
        if (this.onEvent)
            this.listen(this.onEvent);
        await fetch(old.location, { method: "DELETE", headers: auth(this.token) }).catch(() => undefined);
        old.pc.close();
    }
    /** Asks for another video layer (WHEP only). */
    async selectLayer(layer) {
        const url = this.links.get("urn:ietf:params:whep:ext:core:layer");
        if (!url)
            throw new Error("the server offers no layer selection");
        const body = ["auto", "low", "mid", "high"].includes(layer)
            ? { layer }
            : { encodingId: layer };
        const resp = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json", ...auth(this.token) },
            body: JSON.stringify(body),
        });
        if (!resp.ok)
            throw new CascadeError(resp.status, await resp.text());
    }
    /** Follows the stream's server-sent events (WHEP only). */
    listen(onEvent) {
        const url = this.links.get("urn:ietf:params:whep:ext:core:server-sent-events");
        if (!url || this.events)
            return;
        this.onEvent = onEvent;
        const es = new EventSource(url);
        es.addEventListener("move", () => {
            onEvent("move", null);
            void this.move();
        });
        es.addEventListener("ended", () => {
            this.ended();
            onEvent("ended", null);
        });
        for (const name of [...STREAM_EVENTS, ...VIEWER_EVENTS, ...CUE_EVENTS]) {
            es.addEventListener(name, (e) => {
                let data = null;
                try {
                    data = JSON.parse(e.data);
                }
                catch {
                    data = e.data;
                }
                onEvent(name, data);
                this.cue(name, data);
            });
        }
        this.events = es;
    }
    /**
     * Calls `cb` once for each ad break when it is announced, with the milliseconds until
     * its `starts_at` (the wall clock). To start the slot on the same frame as every other
     * viewer, use {@link Session.onAdBreakStart}. When `skip` is true the viewer's tier skips
     * ads. Returns a function that removes `cb`.
     */
    onAdBreak(cb) {
        this.adHandlers.add(cb);
        return () => this.adHandlers.delete(cb);
    }
    /**
     * Calls `cb` once for each ad break when it starts here: when the video element
     * presents the frame the server named (`rtp_timestamp`, read from each frame's
     * `requestVideoFrameCallback` metadata), so every viewer starts on the same frame of the
     * stream whatever its delay; at `starts_at` by the wall clock when no frame is named,
     * the browser reports no timestamps, or the frame does not come (see {@link AdStart}).
     * Returns a function that removes `cb`.
     */
    onAdBreakStart(cb) {
        this.adStartHandlers.add(cb);
        return () => this.adStartHandlers.delete(cb);
    }
    /** Calls `cb` when a sponsor's overlay starts or ends. Returns a function that removes `cb`. */
    onSponsor(cb) {
        this.sponsorHandlers.add(cb);
        return () => this.sponsorHandlers.delete(cb);
    }
    cue(name, data) {
        if (name === "adbreak" && isAdBreak(data)) {
            if (!this.toldBreaks.has(data.id)) {
                this.toldBreaks.add(data.id);
                if (this.toldBreaks.size > 64)
                    this.toldBreaks.delete(this.toldBreaks.values().next().value);
                for (const cb of this.adHandlers)
                    cb(data, startsIn(data.starts_at));
            }
            this.breaks.add(data);
            this.scheduleBreaks();
        }
        else if (name === "sponsor" && isSponsorSlot(data)) {
            for (const cb of this.sponsorHandlers)
                cb(data);
        }
    }
    /** Watches the frames (while a break waits for one) and the clock for breaks' starts. */
    scheduleBreaks() {
        clearTimeout(this.breakTimer);
        if (this.stopped || !this.breaks.waiting())
            return;
        const video = this.video;
        if (video && "requestVideoFrameCallback" in video && this.breaks.byFrame() && !this.frameLoop) {
            this.frameLoop = true;
            const onFrame = (_now, meta) => {
                this.startBreaks(this.breaks.frame(meta.rtpTimestamp));
                if (!this.stopped && this.breaks.waiting() && this.breaks.byFrame()) {
                    video.requestVideoFrameCallback(onFrame);
                }
                else {
                    this.frameLoop = false;
                    this.scheduleBreaks();
                }
            };
            video.requestVideoFrameCallback(onFrame);
        }
        const wait = this.breaks.nextTick();
        if (wait !== Infinity) {
            this.breakTimer = setTimeout(() => {
                this.startBreaks(this.breaks.tick());
                this.scheduleBreaks();
            }, wait);
        }
    }
    startBreaks(started) {
        for (const [ad, how] of started)
            for (const cb of this.adStartHandlers)
                cb(ad, how);
    }
    /** The server ended the session: close what is left of it here. */
    ended() {
        this.stopped = true;
        clearTimeout(this.breakTimer);
        this.events?.close();
        this.reporter?.stop();
        this.pc.close();
    }
    /** Ends the session on the server and closes the connection. Safe to call twice. */
    async stop() {
        if (this.stopped)
            return;
        this.stopped = true;
        clearTimeout(this.breakTimer);
        this.events?.close();
        this.reporter?.stop();
        try {
            await fetch(this.location, { method: "DELETE", headers: auth(this.token) });
        }
        finally {
            this.pc.getSenders().forEach((s) => s.track?.stop());
            this.pc.close();
        }
    }
}
function auth(token) {
    return token ? { authorization: `Bearer ${token}` } : {};
}
/** Parses `Link` headers into rel -> absolute URL (first of each rel). */
export function parseLinks(header, base) {
    const out = new Map();
    if (!header)
        return out;
    for (const part of header.split(/,(?=\s*<)/)) {
        const m = part.match(/<([^>]+)>\s*;(.*)$/);
        if (!m)
            continue;
        const rel = m[2].match(/rel="([^"]+)"/);
        if (rel && !out.has(rel[1]))
            out.set(rel[1], new URL(m[1], base).toString());
    }
    return out;
}
function iceServersFrom(header) {
    const servers = [];
    if (!header)
        return servers;
    for (const part of header.split(/,(?=\s*<)/)) {
        if (!/rel="ice-server"/.test(part))
            continue;
        const url = part.match(/<([^>]+)>/)?.[1];
        if (!url)
            continue;
        const username = part.match(/username="([^"]*)"/)?.[1];
        const credential = part.match(/credential="([^"]*)"/)?.[1];
        servers.push({ urls: url, username, credential });
    }
    return servers;
}
/** The ICE servers an endpoint announces to OPTIONS; none if it does not answer. */
async function announcedIceServers(url) {
    try {
        const resp = await fetch(url, { method: "OPTIONS" });
        return resp.ok ? iceServersFrom(resp.headers.get("link")) : [];
    }
    catch {
        return [];
    }
}
/** The first `a=<name>:` value in an SDP. */
function sdpAttr(sdp, name) {
    return sdp.match(new RegExp(`^a=${name}:(.*)$`, "m"))?.[1]?.trim();
}
/**
 * Sends candidates gathered after the offer as trickle-ice-sdpfrag PATCHes
 * (RFC 9725 §4.3). Stops quietly if the server does not take them.
 */
function trickler(pc, token) {
    let location = null;
    let enabled = true;
    const queue = [];
    const flush = async () => {
        if (!location || !enabled || !queue.length)
            return;
        const sdp = pc.localDescription?.sdp ?? "";
        let frag = `a=ice-ufrag:${sdpAttr(sdp, "ice-ufrag")}\r\na=ice-pwd:${sdpAttr(sdp, "ice-pwd")}\r\n`;
        for (const c of queue.splice(0)) {
            frag += `m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:${c.sdpMid}\r\na=${c.candidate}\r\n`;
        }
        try {
            const resp = await fetch(location, {
                method: "PATCH",
                headers: { "content-type": "application/trickle-ice-sdpfrag", "if-match": "*", ...auth(token) },
                body: frag,
            });
            if (resp.status === 405 || resp.status === 501)
                enabled = false;
        }
        catch {
            enabled = false;
        }
    };
    pc.addEventListener("icecandidate", (e) => {
        if (e.candidate && e.candidate.candidate) {
            queue.push(e.candidate);
            void flush();
        }
    });
    return {
        start(url) {
            location = url;
            void flush();
        },
    };
}
async function exchange(pc, url, token) {
    // No waiting for ICE gathering: the offer goes at once, later candidates trickle.
    const trickle = trickler(pc, token);
    // The endpoint's STUN/TURN servers (RFC 9725 §4.6) must be known before gathering
    // starts, or no relay candidate is gathered: asked with OPTIONS while the offer is made.
    const [offer, announced] = await Promise.all([pc.createOffer(), announcedIceServers(url)]);
    if (announced.length) {
        const own = pc.getConfiguration().iceServers ?? [];
        pc.setConfiguration({ ...pc.getConfiguration(), iceServers: [...own, ...announced] });
    }
    await pc.setLocalDescription(offer);
    const resp = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/sdp", ...auth(token) },
        body: pc.localDescription.sdp,
    });
    if (resp.status !== 201) {
        const e = problemError(resp.status, await resp.text(), resp.statusText);
        throw e instanceof SubscriptionRequiredError ? e : new CascadeError(e.status, e.detail, e.code, e.requestId);
    }
    // A cluster answers the first POST with 307 to the chosen edge (RFC 9725 §4.5), which
    // fetch follows with the same body: the session lives where the answer came from.
    const at = resp.url || url;
    const location = new URL(resp.headers.get("location") ?? "", at).toString();
    const links = parseLinks(resp.headers.get("link"), at);
    const extra = iceServersFrom(resp.headers.get("link"));
    if (extra.length && !announced.length) {
        // Too late for this gathering; kept for an ICE restart.
        pc.setConfiguration({ ...pc.getConfiguration(), iceServers: extra });
    }
    await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
    trickle.start(location);
    return { location, links };
}
/** Publishes `media` to the WHIP endpoint `url`. */
export async function publish(url, media, options = {}) {
    const pc = new RTCPeerConnection({ iceServers: options.iceServers ?? [] });
    // Before the offer, so that the offer carries the data channel's m-line.
    const chat = options.chat === false ? undefined : pc.createDataChannel("chat");
    const ladder = options.simulcast === false
        ? undefined
        : Array.isArray(options.simulcast)
            ? options.simulcast
            : DEFAULT_LADDER;
    for (const track of media.getTracks()) {
        if (track.kind === "video") {
            const t = pc.addTransceiver(track, {
                direction: "sendonly",
                streams: [media],
                sendEncodings: ladder?.map((e) => ({ ...e })),
            });
            preferCodec(t, options.codec ?? "video/VP8");
            const params = t.sender.getParameters();
            params.degradationPreference = "maintain-resolution";
            await t.sender.setParameters(params).catch(() => undefined);
        }
        else {
            pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
        }
    }
    try {
        const { location, links } = await exchange(pc, url, options.token);
        const session = new Session(pc, location, links, options.token);
        session.chatChannel = chat;
        return session;
    }
    catch (e) {
        pc.close();
        throw e;
    }
}
function preferCodec(t, mime) {
    const caps = RTCRtpReceiver.getCapabilities("video");
    if (!caps || !t.setCodecPreferences)
        return;
    const first = caps.codecs.filter((c) => c.mimeType.toLowerCase() === mime.toLowerCase());
    const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== mime.toLowerCase());
    if (first.length)
        t.setCodecPreferences([...first, ...rest]);
}
/** Plays the WHEP endpoint `url` into `video`. */
export async function play(url, video, options = {}) {
    const stream = new MediaStream();
    const target = options.layer && options.layer !== "auto"
        ? `${url}${url.includes("?") ? "&" : "?"}layer=${encodeURIComponent(options.layer)}`
        : url;
    // One connection: its tracks replace those of the same kind in the one MediaStream the
    // video element plays, so a move to another node keeps the element and its state.
    const join = async () => {
        const pc = new RTCPeerConnection({ iceServers: options.iceServers ?? [] });
        pc.addTransceiver("video", { direction: "recvonly" });
        pc.addTransceiver("audio", { direction: "recvonly" });
        const chat = options.chat === false ? undefined : pc.createDataChannel("chat");
        pc.ontrack = (e) => {
            for (const t of stream.getTracks())
                if (t.kind === e.track.kind)
                    stream.removeTrack(t);
            stream.addTrack(e.track);
            if (video.srcObject !== stream)
                video.srcObject = stream;
        };
        try {
            const { location, links } = await exchange(pc, target, options.token);
            return { pc, location, links, chat };
        }
        catch (e) {
            pc.close();
            throw e;
        }
    };
    const first = await join();
    const session = new Session(first.pc, first.location, first.links, options.token);
    session.chatChannel = first.chat;
    session.video = video;
    session.rejoin = join;
    // Always followed: a drained node's `move` reaches the session even without a listener.
    session.listen(options.onEvent ?? (() => undefined));
    // Reported where the player joined (a cluster's control plane), not to the edge.
    if (options.stats !== false)
        session.reporter = new PlaybackReporter(video, session.location, url);
    return session;
}

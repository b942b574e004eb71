import type { Account } from "./account.js";
import type { ChatMessage, ChatSettings, Poll, Question, Survey, SurveyQuestion } from "./chat.js";
export interface Report {
    id: string;
    message_id: number;
    /** Who reported it. */
    reporter: string;
    reason: string;
    status: "open" | "dismissed" | "deleted";
    created_at: number;
}
export interface Ban {
    username: string;
    reason: string;
    created_at: number;
    /** null: a ban; else when the timeout ends (Unix ms). */
    expires_at: number | null;
    /** Also refused watching. */
    watch: boolean;
}
export interface BlockedTerm {
    id: string;
    term: string;
    action: "mask" | "reject";
}
export interface Moderator {
    username: string;
    added_at: number;
}
export interface ModLogEntry {
    id: string;
    at: number;
    actor: string;
    action: string;
    target: string;
    reason: string;
}
/** One channel's interaction API, as the account's user. Get it with `account.channel(slug)`. */
export declare class ChannelApi {
    private readonly account;
    readonly slug: string;
    constructor(account: Account, slug: string);
    private path;
    private call;
    /** A list, whether the server answers with an array or a page (`{items}`). */
    private list;
    /** Chat messages over REST (the live room is a `Chat`). */
    readonly chat: {
        messages: (since?: number, limit?: number) => Promise<{
            messages: ChatMessage[];
            truncated: boolean;
        }>;
        post: (text: string, replyTo?: number) => Promise<ChatMessage>;
        /** As a moderator, or the author. */
        delete: (id: number) => Promise<void>;
        report: (id: number, reason: string) => Promise<Report>;
        pin: (id: number) => Promise<ChatMessage>;
        unpin: () => Promise<void>;
        settings: () => Promise<ChatSettings>;
        updateSettings: (s: Partial<ChatSettings>) => Promise<ChatSettings>;
        follow: () => Promise<void>;
        unfollow: () => Promise<void>;
    };
    /** What moderators do: reports, bans and timeouts, blocked terms, moderators, the log. */
    readonly moderation: {
        reports: (status?: string) => Promise<Report[]>;
        resolve: (id: string, action: "dismiss" | "delete") => Promise<Report>;
        bans: () => Promise<Ban[]>;
        /** No `duration_secs`: a ban; with it: a timeout. `watch: true` also stops them watching. */
        ban: (b: {
            username: string;
            reason: string;
            duration_secs?: number;
            watch?: boolean;
        }) => Promise<Ban>;
        unban: (username: string) => Promise<void>;
        blockedTerms: () => Promise<BlockedTerm[]>;
        /** `*` in `term` is a wildcard. */
        blockTerm: (term: string, action: "mask" | "reject") => Promise<BlockedTerm>;
        unblockTerm: (id: string) => Promise<void>;
        moderators: () => Promise<Moderator[]>;
        /** The owner only. */
        addModerator: (username: string) => Promise<unknown>;
        removeModerator: (username: string) => Promise<void>;
        log: () => Promise<ModLogEntry[]>;
    };
    readonly polls: {
        list: () => Promise<Poll[]>;
        create: (p: {
            question: string;
            options: string[];
            multiple?: boolean;
            duration_secs?: number;
        }) => Promise<Poll>;
        /** One vote per account: a second is refused (409), as is a vote on a closed poll. */
        vote: (id: string, choices: number[]) => Promise<Poll>;
        close: (id: string) => Promise<Poll>;
    };
    /** Q&A. */
    readonly qa: {
        list: (sort?: "votes" | "time") => Promise<Question[]>;
        ask: (text: string) => Promise<Question>;
        upvote: (id: string) => Promise<Question>;
        /** As a moderator: mark answered, pin, or hide. */
        update: (id: string, fields: {
            answered?: boolean;
            pinned?: boolean;
            hidden?: boolean;
        }) => Promise<Question>;
    };
    readonly surveys: {
        list: () => Promise<Survey[]>;
        create: (s: {
            title: string;
            questions: SurveyQuestion[];
        }) => Promise<Survey>;
        /** One answer per question: a choice's index, a number on the scale, or text. */
        respond: (id: string, answers: (number | string)[]) => Promise<unknown>;
        results: (id: string) => Promise<unknown>;
        /** The results as a CSV file (moderators). */
        resultsCsv: (id: string) => Promise<Blob>;
        close: (id: string) => Promise<Survey>;
    };
}

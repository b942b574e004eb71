// A channel's chat, moderation, polls, surveys and Q&A over REST (docs/CHAT.md's table,
// under /api/v1/channels/{slug}). Reading needs no account; acting needs one, and
// moderating needs the channel's owner, one of its moderators, or an admin. Results also
// reach every client of the room live, as the events of a `Chat`.

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
export class ChannelApi {
  constructor(
    private readonly account: Account,
    readonly slug: string,
  ) {}

  private path(rest: string): string {
    return `/channels/${encodeURIComponent(this.slug)}/${rest}`;
  }

  private call<T>(method: string, rest: string, body?: unknown): Promise<T> {
    return this.account.call<T>(method, this.path(rest), body);
  }

  /** A list, whether the server answers with an array or a page (`{items}`). */
  private async list<T>(rest: string): Promise<T[]> {
    const r = await this.call<T[] | { items: T[] }>("GET", rest);
    return Array.isArray(r) ? r : (r?.items ?? []);
  }

  /** Chat messages over REST (the live room is a `Chat`). */
  readonly chat = {
    messages: (since?: number, limit?: number) => {
      const q = new URLSearchParams();
      if (since !== undefined) q.set("since", String(since));
      if (limit !== undefined) q.set("limit", String(limit));
      const qs = q.toString();
      return this.call<{ messages: ChatMessage[]; truncated: boolean }>("GET", `chat/messages${qs ? `?${qs}` : ""}`);
    },
    post: (text: string, replyTo?: number) =>
      this.call<ChatMessage>("POST", "chat/messages", replyTo === undefined ? { text } : { text, reply_to: replyTo }),
    /** As a moderator, or the author. */
    delete: (id: number) => this.call<void>("DELETE", `chat/messages/${id}`),
    report: (id: number, reason: string) => this.call<Report>("POST", `chat/messages/${id}/report`, { reason }),
    pin: (id: number) => this.call<ChatMessage>("PUT", "chat/pinned", { id }),
    unpin: () => this.call<void>("DELETE", "chat/pinned"),
    settings: () => this.call<ChatSettings>("GET", "chat/settings"),
    updateSettings: (s: Partial<ChatSettings>) => this.call<ChatSettings>("PATCH", "chat/settings", s),
    follow: () => this.call<void>("POST", "follow"),
    unfollow: () => this.call<void>("DELETE", "follow"),
  };

  /** What moderators do: reports, bans and timeouts, blocked terms, moderators, the log. */
  readonly moderation = {
    reports: (status = "open") => this.list<Report>(`reports?status=${encodeURIComponent(status)}`),
    resolve: (id: string, action: "dismiss" | "delete") =>
      this.call<Report>("POST", `reports/${encodeURIComponent(id)}/resolve`, { action }),
    bans: () => this.list<Ban>("bans"),
    /** No `duration_secs`: a ban; with it: a timeout. `watch: true` also stops them watching. */
    ban: (b: { username: string; reason: string; duration_secs?: number; watch?: boolean }) =>
      this.call<Ban>("POST", "bans", b),
    unban: (username: string) => this.call<void>("DELETE", `bans/${encodeURIComponent(username)}`),
    blockedTerms: () => this.list<BlockedTerm>("blocked-terms"),
    /** `*` in `term` is a wildcard. */
    blockTerm: (term: string, action: "mask" | "reject") => this.call<BlockedTerm>("POST", "blocked-terms", { term, action }),
    unblockTerm: (id: string) => this.call<void>("DELETE", `blocked-terms/${encodeURIComponent(id)}`),
    moderators: () => this.list<Moderator>("moderators"),
    /** The owner only. */
    addModerator: (username: string) => this.call<unknown>("PUT", `moderators/${encodeURIComponent(username)}`),
    removeModerator: (username: string) => this.call<void>("DELETE", `moderators/${encodeURIComponent(username)}`),
    log: () => this.list<ModLogEntry>("modlog"),
  };

  readonly polls = {
    list: () => this.list<Poll>("polls"),
    create: (p: { question: string; options: string[]; multiple?: boolean; duration_secs?: number }) =>
      this.call<Poll>("POST", "polls", p),
    /** One vote per account: a second is refused (409), as is a vote on a closed poll. */
    vote: (id: string, choices: number[]) => this.call<Poll>("POST", `polls/${encodeURIComponent(id)}/votes`, { choices }),
    close: (id: string) => this.call<Poll>("POST", `polls/${encodeURIComponent(id)}/close`),
  };

  /** Q&A. */
  readonly qa = {
    list: (sort: "votes" | "time" = "votes") => this.list<Question>(`questions?sort=${sort}`),
    ask: (text: string) => this.call<Question>("POST", "questions", { text }),
    upvote: (id: string) => this.call<Question>("POST", `questions/${encodeURIComponent(id)}/upvote`),
    /** As a moderator: mark answered, pin, or hide. */
    update: (id: string, fields: { answered?: boolean; pinned?: boolean; hidden?: boolean }) =>
      this.call<Question>("PATCH", `questions/${encodeURIComponent(id)}`, fields),
  };

  readonly surveys = {
    list: () => this.list<Survey>("surveys"),
    create: (s: { title: string; questions: SurveyQuestion[] }) => this.call<Survey>("POST", "surveys", s),
    /** One answer per question: a choice's index, a number on the scale, or text. */
    respond: (id: string, answers: (number | string)[]) =>
      this.call<unknown>("POST", `surveys/${encodeURIComponent(id)}/responses`, { answers }),
    results: (id: string) => this.call<unknown>("GET", `surveys/${encodeURIComponent(id)}/results?format=json`),
    /** The results as a CSV file (moderators). */
    resultsCsv: (id: string) => this.account.download(this.path(`surveys/${encodeURIComponent(id)}/results?format=csv`)),
    close: (id: string) => this.call<Survey>("POST", `surveys/${encodeURIComponent(id)}/close`),
  };
}

// A channel's chat, moderation, polls, surveys and Q&A over REST (docs/CHAT.md's table,
// under /api/v1/channels/{slug}). Reading needs no account; acting needs one, and
// moderating needs the channel's owner, one of its moderators, or an admin. Results also
// reach every client of the room live, as the events of a `Chat`.
/** One channel's interaction API, as the account's user. Get it with `account.channel(slug)`. */
export class ChannelApi {
    constructor(account, slug) {
        this.account = account;
        this.slug = slug;
        /** Chat messages over REST (the live room is a `Chat`). */
        this.chat = {
            messages: (since, limit) => {
                const q = new URLSearchParams();
                if (since !== undefined)
                    q.set("since", String(since));
                if (limit !== undefined)
                    q.set("limit", String(limit));
                const qs = q.toString();
                return this.call("GET", `chat/messages${qs ? `?${qs}` : ""}`);
            },
            post: (text, replyTo) => this.call("POST", "chat/messages", replyTo === undefined ? { text } : { text, reply_to: replyTo }),
            /** As a moderator, or the author. */
            delete: (id) => this.call("DELETE", `chat/messages/${id}`),
            report: (id, reason) => this.call("POST", `chat/messages/${id}/report`, { reason }),
            pin: (id) => this.call("PUT", "chat/pinned", { id }),
            unpin: () => this.call("DELETE", "chat/pinned"),
            settings: () => this.call("GET", "chat/settings"),
            updateSettings: (s) => this.call("PATCH", "chat/settings", s),
            follow: () => this.call("POST", "follow"),
            unfollow: () => this.call("DELETE", "follow"),
        };
        /** What moderators do: reports, bans and timeouts, blocked terms, moderators, the log. */
        this.moderation = {
            reports: (status = "open") => this.list(`reports?status=${encodeURIComponent(status)}`),
            resolve: (id, action) => this.call("POST", `reports/${encodeURIComponent(id)}/resolve`, { action }),
            bans: () => this.list("bans"),
            /** No `duration_secs`: a ban; with it: a timeout. `watch: true` also stops them watching. */
            ban: (b) => this.call("POST", "bans", b),
            unban: (username) => this.call("DELETE", `bans/${encodeURIComponent(username)}`),
            blockedTerms: () => this.list("blocked-terms"),
            /** `*` in `term` is a wildcard. */
            blockTerm: (term, action) => this.call("POST", "blocked-terms", { term, action }),
            unblockTerm: (id) => this.call("DELETE", `blocked-terms/${encodeURIComponent(id)}`),
            moderators: () => this.list("moderators"),
            /** The owner only. */
            addModerator: (username) => this.call("PUT", `moderators/${encodeURIComponent(username)}`),
            removeModerator: (username) => this.call("DELETE", `moderators/${encodeURIComponent(username)}`),
            log: () => this.list("modlog"),
        };
        this.polls = {
            list: () => this.list("polls"),
            create: (p) => this.call("POST", "polls", p),
            /** One vote per account: a second is refused (409), as is a vote on a closed poll. */
            vote: (id, choices) => this.call("POST", `polls/${encodeURIComponent(id)}/votes`, { choices }),
            close: (id) => this.call("POST", `polls/${encodeURIComponent(id)}/close`),
        };
        /** Q&A. */
        this.qa = {
            list: (sort = "votes") => this.list(`questions?sort=${sort}`),
            ask: (text) => this.call("POST", "questions", { text }),
            upvote: (id) => this.call("POST", `questions/${encodeURIComponent(id)}/upvote`),
            /** As a moderator: mark answered, pin, or hide. */
            update: (id, fields) => this.call("PATCH", `questions/${encodeURIComponent(id)}`, fields),
        };
        this.surveys = {
            list: () => this.list("surveys"),
            create: (s) => this.call("POST", "surveys", s),
            /** One answer per question: a choice's index, a number on the scale, or text. */
            respond: (id, answers) => this.call("POST", `surveys/${encodeURIComponent(id)}/responses`, { answers }),
            results: (id) => this.call("GET", `surveys/${encodeURIComponent(id)}/results?format=json`),
            /** The results as a CSV file (moderators). */
            resultsCsv: (id) => this.account.download(this.path(`surveys/${encodeURIComponent(id)}/results?format=csv`)),
            close: (id) => this.call("POST", `surveys/${encodeURIComponent(id)}/close`),
        };
    }
    path(rest) {
        return `/channels/${encodeURIComponent(this.slug)}/${rest}`;
    }
    call(method, rest, body) {
        return this.account.call(method, this.path(rest), body);
    }
    /** A list, whether the server answers with an array or a page (`{items}`). */
    async list(rest) {
        const r = await this.call("GET", rest);
        return Array.isArray(r) ? r : (r?.items ?? []);
    }
}

// Money from the browser (docs/MONETIZATION.md): a channel's tiers and paywall, a viewer's
// subscriptions and tips, the payment gateway's card form, and a channel's earnings and
// payouts statement. Amounts are integer minor units (cents) with a lowercase ISO 4217
// currency. Every call that moves money sends an `Idempotency-Key`: a retry with the same
// key charges nothing more.
/** A fresh idempotency key. */
export function idempotencyKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
/** `amount` minor units of `currency` as people read it (`$5.00`). */
export function formatMoney(amount, currency) {
    try {
        return new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(amount / 100);
    }
    catch {
        return `${(amount / 100).toFixed(2)} ${currency.toUpperCase()}`;
    }
}
/** Money calls as the account's user. */
export class Money {
    constructor(account) {
        this.account = account;
    }
    ch(slug, rest) {
        return `/channels/${encodeURIComponent(slug)}/${rest}`;
    }
    /** The gateway the pages pay through (no account needed). */
    config() {
        return this.account.call("GET", "/payments/config");
    }
    /** The channel's tiers: the active ones (its owner sees retired ones too). */
    tiers(slug) {
        return this.account.call("GET", this.ch(slug, "tiers"));
    }
    createTier(slug, t) {
        return this.account.call("POST", this.ch(slug, "tiers"), t);
    }
    renameTier(slug, id, name) {
        return this.account.call("PATCH", this.ch(slug, `tiers/${encodeURIComponent(id)}`), { name });
    }
    /** Stops offering a tier (its subscribers keep it). */
    retireTier(slug, id) {
        return this.account.call("DELETE", this.ch(slug, `tiers/${encodeURIComponent(id)}`));
    }
    paywall(slug) {
        return this.account.call("GET", this.ch(slug, "paywall"));
    }
    setPaywall(slug, p) {
        return this.account.call("PUT", this.ch(slug, "paywall"), p);
    }
    /**
     * Starts saving a card: confirm the client secret with the gateway's card form
     * (`stripe.confirmCardSetup(secret, { payment_method: { card } })`), then pass the
     * payment method it made to {@link subscribe} or {@link tip}.
     */
    async setupCard() {
        return (await this.account.call("POST", "/me/payment-methods/setup")).client_secret;
    }
    /** Subscribes to a tier. `incomplete` until the gateway's event makes it `active`. */
    subscribe(slug, tier, payment_method, key = idempotencyKey()) {
        return this.account.call("POST", this.ch(slug, `tiers/${encodeURIComponent(tier)}/subscribe`), { payment_method }, { "idempotency-key": key });
    }
    /** The user's subscriptions, newest first. */
    subscriptions() {
        return this.account.call("GET", "/me/subscriptions");
    }
    /** Cancels now: the channel's subscribers-only streams refuse the user from the next join. */
    cancel(id) {
        return this.account.call("DELETE", `/me/subscriptions/${encodeURIComponent(id)}`);
    }
    /** Tips a channel; announced to its room (the `tip` event) once the payment succeeded. */
    tip(slug, t, key = idempotencyKey()) {
        return this.account.call("POST", this.ch(slug, "tips"), t, { "idempotency-key": key });
    }
    /** The channel's subscribers with their tiers' names (public: the chat's badges). */
    badges(slug) {
        return this.account.call("GET", this.ch(slug, "badges"));
    }
    /** The channel's balances, one per currency (its owner). */
    balance(slug) {
        return this.account.call("GET", this.ch(slug, "balance"));
    }
    /** The channel's statement (every payment and payout, running balance) as CSV. */
    statement(slug) {
        return this.account.download(this.ch(slug, "payouts.csv"));
    }
}

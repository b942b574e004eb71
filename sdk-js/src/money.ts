// Money from the browser (docs/MONETIZATION.md): a channel's tiers and paywall, a viewer's
// subscriptions and tips, the payment gateway's card form, and a channel's earnings and
// payouts statement. Amounts are integer minor units (cents) with a lowercase ISO 4217
// currency. Every call that moves money sends an `Idempotency-Key`: a retry with the same
// key charges nothing more.

import type { Account } from "./account.js";
import type { ChatUser } from "./chat.js";

export interface Tier {
  id: string;
  name: string;
  /** Price per period, minor units. */
  amount: number;
  currency: string;
  period: "month" | "year";
  /** Offered to new subscribers (a retired tier is listed to its owner only). */
  active: boolean;
  created_at: number;
}

export interface Paywall {
  /** Every stream of the channel is for subscribers. */
  subscribers_only: boolean;
  /**
   * This stream only: the live now (or the next one while the channel is offline) is for
   * subscribers until it ends; the next live is open again. Read: it holds now.
   */
  this_stream?: boolean;
  /** The current stream is for subscribers until then (Unix ms), or null (older form). */
  stream_until?: number | null;
}

export interface Subscription {
  id: string;
  /** The channel's slug. */
  channel: string;
  /** The tier's id. */
  tier: string;
  /** `incomplete` until the gateway's event says `active`; `canceled` is final. */
  status: string;
  /** Whether it admits the viewer to the channel's subscribers-only streams now. */
  entitled: boolean;
  gateway_subscription: string;
  client_secret?: string;
  created_at: number;
}

/** A tip: the `tip` chat event's payload too (the on-stream alert). */
export interface Tip {
  id: string;
  /** Who tipped (null: an account since deleted). */
  user: ChatUser | null;
  amount: number;
  currency: string;
  /** Plain text: render it as text, never as HTML. */
  message: string;
  status: "pending" | "succeeded";
  client_secret?: string;
  created_at: number;
}

/** A channel's money in one currency. */
export interface Balance {
  currency: string;
  /** Paid by viewers. */
  gross: number;
  /** The platform's fees. */
  fees: number;
  /** Paid out to the channel. */
  payouts: number;
  /** Owed to the channel now: gross − fees − payouts. */
  balance: number;
}

/** The payment gateway as the browser sees it. */
export interface PaymentsConfig {
  /** `stripe`, or null: nothing can be paid on this server. */
  gateway: string | null;
  publishable_key: string | null;
  /** Where the gateway's script (Stripe.js) is loaded from. */
  js_url: string | null;
}

/** A subscriber's badge in chat. */
export interface Badge {
  username: string;
  /** The tier's name. */
  tier: string;
}

/** A fresh idempotency key. */
export function idempotencyKey(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** `amount` minor units of `currency` as people read it (`$5.00`). */
export function formatMoney(amount: number, currency: string): string {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(amount / 100);
  } catch {
    return `${(amount / 100).toFixed(2)} ${currency.toUpperCase()}`;
  }
}

/** Money calls as the account's user. */
export class Money {
  constructor(private readonly account: Account) {}

  private ch(slug: string, rest: string): string {
    return `/channels/${encodeURIComponent(slug)}/${rest}`;
  }

  /** The gateway the pages pay through (no account needed). */
  config(): Promise<PaymentsConfig> {
    return this.account.call<PaymentsConfig>("GET", "/payments/config");
  }

  /** The channel's tiers: the active ones (its owner sees retired ones too). */
  tiers(slug: string): Promise<Tier[]> {
    return this.account.call<Tier[]>("GET", this.ch(slug, "tiers"));
  }

  createTier(slug: string, t: { name: string; amount: number; currency: string; period: "month" | "year" }): Promise<Tier> {
    return this.account.call<Tier>("POST", this.ch(slug, "tiers"), t);
  }

  renameTier(slug: string, id: string, name: string): Promise<Tier> {
    return this.account.call<Tier>("PATCH", this.ch(slug, `tiers/${encodeURIComponent(id)}`), { name });
  }

  /** Stops offering a tier (its subscribers keep it). */
  retireTier(slug: string, id: string): Promise<void> {
    return this.account.call<void>("DELETE", this.ch(slug, `tiers/${encodeURIComponent(id)}`));
  }

  paywall(slug: string): Promise<Paywall> {
    return this.account.call<Paywall>("GET", this.ch(slug, "paywall"));
  }

  setPaywall(slug: string, p: Paywall): Promise<Paywall> {
    return this.account.call<Paywall>("PUT", this.ch(slug, "paywall"), p);
  }

  /**
   * Starts saving a card: confirm the client secret with the gateway's card form
   * (`stripe.confirmCardSetup(secret, { payment_method: { card } })`), then pass the
   * payment method it made to {@link subscribe} or {@link tip}.
   */
  async setupCard(): Promise<string> {
    return (await this.account.call<{ client_secret: string }>("POST", "/me/payment-methods/setup")).client_secret;
  }

  /** Subscribes to a tier. `incomplete` until the gateway's event makes it `active`. */
  subscribe(slug: string, tier: string, payment_method?: string, key = idempotencyKey()): Promise<Subscription> {
    return this.account.call<Subscription>("POST", this.ch(slug, `tiers/${encodeURIComponent(tier)}/subscribe`),
      { payment_method }, { "idempotency-key": key });
  }

  /** The user's subscriptions, newest first. */
  subscriptions(): Promise<Subscription[]> {
    return this.account.call<Subscription[]>("GET", "/me/subscriptions");
  }

  /** Cancels now: the channel's subscribers-only streams refuse the user from the next join. */
  cancel(id: string): Promise<Subscription> {
    return this.account.call<Subscription>("DELETE", `/me/subscriptions/${encodeURIComponent(id)}`);
  }

  /** Tips a channel; announced to its room (the `tip` event) once the payment succeeded. */
  tip(slug: string, t: { amount: number; currency: string; message?: string; payment_method?: string }, key = idempotencyKey()): Promise<Tip> {
    return this.account.call<Tip>("POST", this.ch(slug, "tips"), t, { "idempotency-key": key });
  }

  /** The channel's subscribers with their tiers' names (public: the chat's badges). */
  badges(slug: string): Promise<Badge[]> {
    return this.account.call<Badge[]>("GET", this.ch(slug, "badges"));
  }

  /** The channel's balances, one per currency (its owner). */
  balance(slug: string): Promise<Balance[]> {
    return this.account.call<Balance[]>("GET", this.ch(slug, "balance"));
  }

  /** The channel's statement (every payment and payout, running balance) as CSV. */
  statement(slug: string): Promise<Blob> {
    return this.account.download(this.ch(slug, "payouts.csv"));
  }
}

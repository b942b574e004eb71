// Webhook endpoints and API keys (docs/WEBHOOKS.md) from the browser: what the studio
// manages for a channel. A new endpoint's signing secret, and a new API key, are shown
// once: in the answer that made them.

import type { Account } from "./account.js";

export interface WebhookEndpoint {
  id: string;
  /** The channel's slug, or null: every channel (admins). */
  channel: string | null;
  url: string;
  description: string;
  /** `stream.started`, `tip.received`, … */
  events: string[];
  enabled: boolean;
  /** After a rotation, the old secret still signs until then (Unix ms). */
  previous_secret_until: number | null;
  created_at: number;
  updated_at: number;
}

/** An endpoint just made (or rotated): its `whsec_…` secret, shown this once. */
export interface NewWebhookEndpoint extends WebhookEndpoint {
  secret: string;
}

export interface WebhookDelivery {
  id: string;
  event_id: string;
  /** The event type (`webhook.test`, `tip.received`, …). */
  type: string;
  attempts: number;
  next_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
  delivered_at: number | null;
  failed_at: number | null;
  created_at: number;
}

export interface ApiKey {
  id: string;
  name: string;
  /** `analytics:read`, `channel:manage`, `chat:moderate`. */
  scopes: string[];
  channel: string | null;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

/** A key just made: `key` (`cak_…`) is shown this once. */
export interface NewApiKey extends ApiKey {
  key: string;
}

/** The event types an endpoint can ask for. */
export const WEBHOOK_EVENTS = [
  "stream.started", "stream.ended", "viewers.milestone", "chat.message_reported",
  "subscription.created", "tip.received", "ad_break.started", "recording.ready",
] as const;

/** The scopes an API key can carry. */
export const API_KEY_SCOPES = ["analytics:read", "channel:manage", "chat:moderate"] as const;

/** Webhooks and API keys as the account's user. */
export class Integrations {
  constructor(private readonly account: Account) {}

  webhooks(channel?: string): Promise<WebhookEndpoint[]> {
    const q = channel ? `?channel=${encodeURIComponent(channel)}` : "";
    return this.account.call<WebhookEndpoint[]>("GET", `/webhooks${q}`);
  }

  createWebhook(e: { channel?: string; url: string; events: string[]; description?: string }): Promise<NewWebhookEndpoint> {
    return this.account.call<NewWebhookEndpoint>("POST", "/webhooks", e);
  }

  editWebhook(id: string, e: { url?: string; events?: string[]; description?: string; enabled?: boolean }): Promise<WebhookEndpoint> {
    return this.account.call<WebhookEndpoint>("PATCH", `/webhooks/${encodeURIComponent(id)}`, e);
  }

  deleteWebhook(id: string): Promise<void> {
    return this.account.call<void>("DELETE", `/webhooks/${encodeURIComponent(id)}`);
  }

  /** A new secret (shown once); the old one keeps signing for a while. */
  rotateWebhook(id: string): Promise<NewWebhookEndpoint> {
    return this.account.call<NewWebhookEndpoint>("POST", `/webhooks/${encodeURIComponent(id)}/rotate`);
  }

  /** Sends a `webhook.test` event. */
  testWebhook(id: string): Promise<{ event_id: string }> {
    return this.account.call<{ event_id: string }>("POST", `/webhooks/${encodeURIComponent(id)}/test`);
  }

  deliveries(id: string, limit = 50): Promise<{ deliveries: WebhookDelivery[]; attempts: unknown[] }> {
    return this.account.call("GET", `/webhooks/${encodeURIComponent(id)}/deliveries?limit=${limit}`);
  }

  apiKeys(): Promise<ApiKey[]> {
    return this.account.call<ApiKey[]>("GET", "/api-keys");
  }

  createApiKey(k: { name: string; scopes: string[]; channel?: string }): Promise<NewApiKey> {
    return this.account.call<NewApiKey>("POST", "/api-keys", k);
  }

  revokeApiKey(id: string): Promise<void> {
    return this.account.call<void>("DELETE", `/api-keys/${encodeURIComponent(id)}`);
  }
}

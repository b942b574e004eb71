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
export declare const WEBHOOK_EVENTS: readonly ["stream.started", "stream.ended", "viewers.milestone", "chat.message_reported", "subscription.created", "tip.received", "ad_break.started", "recording.ready"];
/** The scopes an API key can carry. */
export declare const API_KEY_SCOPES: readonly ["analytics:read", "channel:manage", "chat:moderate"];
/** Webhooks and API keys as the account's user. */
export declare class Integrations {
    private readonly account;
    constructor(account: Account);
    webhooks(channel?: string): Promise<WebhookEndpoint[]>;
    createWebhook(e: {
        channel?: string;
        url: string;
        events: string[];
        description?: string;
    }): Promise<NewWebhookEndpoint>;
    editWebhook(id: string, e: {
        url?: string;
        events?: string[];
        description?: string;
        enabled?: boolean;
    }): Promise<WebhookEndpoint>;
    deleteWebhook(id: string): Promise<void>;
    /** A new secret (shown once); the old one keeps signing for a while. */
    rotateWebhook(id: string): Promise<NewWebhookEndpoint>;
    /** Sends a `webhook.test` event. */
    testWebhook(id: string): Promise<{
        event_id: string;
    }>;
    deliveries(id: string, limit?: number): Promise<{
        deliveries: WebhookDelivery[];
        attempts: unknown[];
    }>;
    apiKeys(): Promise<ApiKey[]>;
    createApiKey(k: {
        name: string;
        scopes: string[];
        channel?: string;
    }): Promise<NewApiKey>;
    revokeApiKey(id: string): Promise<void>;
}

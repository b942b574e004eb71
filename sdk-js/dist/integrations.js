// Webhook endpoints and API keys (docs/WEBHOOKS.md) from the browser: what the studio
// manages for a channel. A new endpoint's signing secret, and a new API key, are shown
// once: in the answer that made them.
/** The event types an endpoint can ask for. */
export const WEBHOOK_EVENTS = [
    "stream.started", "stream.ended", "viewers.milestone", "chat.message_reported",
    "subscription.created", "tip.received", "ad_break.started", "recording.ready",
];
/** The scopes an API key can carry. */
export const API_KEY_SCOPES = ["analytics:read", "channel:manage", "chat:moderate"];
/** Webhooks and API keys as the account's user. */
export class Integrations {
    constructor(account) {
        this.account = account;
    }
    webhooks(channel) {
        const q = channel ? `?channel=${encodeURIComponent(channel)}` : "";
        return this.account.call("GET", `/webhooks${q}`);
    }
    createWebhook(e) {
        return this.account.call("POST", "/webhooks", e);
    }
    editWebhook(id, e) {
        return this.account.call("PATCH", `/webhooks/${encodeURIComponent(id)}`, e);
    }
    deleteWebhook(id) {
        return this.account.call("DELETE", `/webhooks/${encodeURIComponent(id)}`);
    }
    /** A new secret (shown once); the old one keeps signing for a while. */
    rotateWebhook(id) {
        return this.account.call("POST", `/webhooks/${encodeURIComponent(id)}/rotate`);
    }
    /** Sends a `webhook.test` event. */
    testWebhook(id) {
        return this.account.call("POST", `/webhooks/${encodeURIComponent(id)}/test`);
    }
    deliveries(id, limit = 50) {
        return this.account.call("GET", `/webhooks/${encodeURIComponent(id)}/deliveries?limit=${limit}`);
    }
    apiKeys() {
        return this.account.call("GET", "/api-keys");
    }
    createApiKey(k) {
        return this.account.call("POST", "/api-keys", k);
    }
    revokeApiKey(id) {
        return this.account.call("DELETE", `/api-keys/${encodeURIComponent(id)}`);
    }
}

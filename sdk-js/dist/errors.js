// Typed errors for what the server refuses: every problem+json answer (RFC 9457) of the
// API and of WHIP/WHEP becomes a `CascadeApiError` with its status and, where clients act
// on it, its stable `code`; a paywalled stream's refusal is a `SubscriptionRequiredError`.
/** A refusal from the server: its HTTP status, its problem `code` (when it has one) and detail. */
export class CascadeApiError extends Error {
    constructor(status, detail, 
    /** A stable reason (`subscription_required`, `insufficient_scope`, …), or "". */
    code = "", 
    /** The request's id (`x-request-id`), to quote to an operator. */
    requestId = "") {
        super(detail);
        this.status = status;
        this.detail = detail;
        this.code = code;
        this.requestId = requestId;
        this.name = "CascadeApiError";
    }
}
/**
 * The stream is for the channel's subscribers (403 `subscription_required`): offer the
 * channel's tiers (`new Money(account).tiers(slug)`) and retry after subscribing.
 */
export class SubscriptionRequiredError extends CascadeApiError {
    constructor(detail, requestId = "") {
        super(403, detail, "subscription_required", requestId);
        this.name = "SubscriptionRequiredError";
    }
}
/** The problem fields of an error answer's body (JSON or not). */
export function parseProblem(status, body, fallback = "") {
    try {
        const p = JSON.parse(body);
        if (p && typeof p === "object") {
            return {
                detail: typeof p.detail === "string" ? p.detail : fallback || body,
                code: typeof p.code === "string" ? p.code : "",
                requestId: typeof p.request_id === "string" ? p.request_id : "",
            };
        }
    }
    catch {
        // plain text (a WHIP/WHEP refusal) or nothing
    }
    return { detail: body.trim() || fallback || `HTTP ${status}`, code: "", requestId: "" };
}
/** The typed error for an error answer: a `SubscriptionRequiredError` for that code. */
export function problemError(status, body, fallback = "") {
    const p = parseProblem(status, body, fallback);
    if (status === 403 && p.code === "subscription_required")
        return new SubscriptionRequiredError(p.detail, p.requestId);
    return new CascadeApiError(status, p.detail, p.code, p.requestId);
}

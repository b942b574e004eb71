/** A refusal from the server: its HTTP status, its problem `code` (when it has one) and detail. */
export declare class CascadeApiError extends Error {
    readonly status: number;
    readonly detail: string;
    /** A stable reason (`subscription_required`, `insufficient_scope`, …), or "". */
    readonly code: string;
    /** The request's id (`x-request-id`), to quote to an operator. */
    readonly requestId: string;
    constructor(status: number, detail: string, 
    /** A stable reason (`subscription_required`, `insufficient_scope`, …), or "". */
    code?: string, 
    /** The request's id (`x-request-id`), to quote to an operator. */
    requestId?: string);
}
/**
 * The stream is for the channel's subscribers (403 `subscription_required`): offer the
 * channel's tiers (`new Money(account).tiers(slug)`) and retry after subscribing.
 */
export declare class SubscriptionRequiredError extends CascadeApiError {
    constructor(detail: string, requestId?: string);
}
/** The problem fields of an error answer's body (JSON or not). */
export declare function parseProblem(status: number, body: string, fallback?: string): {
    detail: string;
    code: string;
    requestId: string;
};
/** The typed error for an error answer: a `SubscriptionRequiredError` for that code. */
export declare function problemError(status: number, body: string, fallback?: string): CascadeApiError;

//! The payment gateway behind a trait: what the control plane asks of it (customers, a
//! tier's product and price, subscriptions, payments for tips) and the events it sends
//! back, already verified and typed. Stripe is `stripe/`; another gateway implements the
//! same trait.

use futures_util::future::BoxFuture;

/// Why a gateway call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The gateway could not be reached or answered 5xx.
    #[error("the payment gateway is unavailable: {0}")]
    Unavailable(String),
    /// The gateway refused the request (4xx: a declined card, a bad parameter); the
    /// detail is the gateway's message, safe to show.
    #[error("the payment gateway refused: {0}")]
    Refused(String),
    /// The answer was not what its API documents.
    #[error("unexpected answer from the payment gateway: {0}")]
    Protocol(String),
}

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The signature is missing, wrong or too old.
    #[error(transparent)]
    Signature(#[from] super::stripe::SignatureError),
    /// Signed, but not an event.
    #[error("not an event: {0}")]
    Malformed(String),
}

/// A subscription's state at the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubStatus {
    /// Created, first payment not through.
    Incomplete,
    /// In a free trial.
    Trialing,
    /// Paid up.
    Active,
    /// A renewal failed; the gateway retries.
    PastDue,
    /// Retries exhausted.
    Unpaid,
    /// The first payment never went through.
    IncompleteExpired,
    /// Ended (terminal).
    Canceled,
}

impl SubStatus {
    /// The gateway's word (Stripe's).
    pub fn parse(s: &str) -> Option<SubStatus> {
        Some(match s {
            "incomplete" => SubStatus::Incomplete,
            "trialing" => SubStatus::Trialing,
            "active" => SubStatus::Active,
            "past_due" => SubStatus::PastDue,
            "unpaid" => SubStatus::Unpaid,
            "incomplete_expired" => SubStatus::IncompleteExpired,
            "canceled" => SubStatus::Canceled,
            _ => return None,
        })
    }

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            SubStatus::Incomplete => "incomplete",
            SubStatus::Trialing => "trialing",
            SubStatus::Active => "active",
            SubStatus::PastDue => "past_due",
            SubStatus::Unpaid => "unpaid",
            SubStatus::IncompleteExpired => "incomplete_expired",
            SubStatus::Canceled => "canceled",
        }
    }

    /// Order among states reported in the same second: later in a subscription's life
    /// wins a tie (`canceled` last: nothing follows it).
    pub fn rank(self) -> u8 {
        match self {
            SubStatus::Incomplete => 0,
            SubStatus::Trialing => 1,
            SubStatus::Active => 2,
            SubStatus::PastDue => 3,
            SubStatus::Unpaid => 4,
            SubStatus::IncompleteExpired => 5,
            SubStatus::Canceled => 6,
        }
    }

    /// Whether it entitles the subscriber to watch.
    pub fn entitles(self) -> bool {
        matches!(self, SubStatus::Active | SubStatus::Trialing)
    }
}

/// Whether a state reported at `new_at` replaces the one held from `old_at` (Unix
/// seconds, the events' `created`): a newer report wins, a tie goes to the later state,
/// an older report changes nothing, and nothing leaves `canceled`.
pub fn supersedes(old: SubStatus, old_at: i64, new: SubStatus, new_at: i64) -> bool {
    if old == SubStatus::Canceled {
        return false;
    }
    new_at > old_at || (new_at == old_at && new.rank() > old.rank())
}

/// A tier at the gateway.
#[derive(Debug, Clone)]
pub struct TierRefs {
    /// The product.
    pub product: String,
    /// The recurring price (Stripe: a Plan, which is a Price).
    pub price: String,
}

/// A subscription or payment just made.
#[derive(Debug, Clone)]
pub struct Created {
    /// The gateway's id.
    pub id: String,
    /// Its state now, as the gateway said (events decide what we hold).
    pub status: String,
    /// What a browser needs to finish the payment (3-D Secure) with the gateway's
    /// script, if the gateway gave one.
    pub client_secret: Option<String>,
}

/// A tier to create: its channel, name, price and period (`month` or `year`).
#[derive(Debug, Clone)]
pub struct NewTier<'a> {
    /// The channel's id (metadata).
    pub channel_id: &'a str,
    /// Shown on receipts.
    pub name: &'a str,
    /// Minor units per period.
    pub amount: i64,
    /// Lowercase ISO code.
    pub currency: &'a str,
    /// `month` or `year`.
    pub period: &'a str,
}

/// A subscription to create.
#[derive(Debug, Clone)]
pub struct NewSubscription<'a> {
    /// The gateway's customer.
    pub customer: &'a str,
    /// The tier's price.
    pub price: &'a str,
    /// The payment method the browser made with the gateway's card form (attached to
    /// the customer and made its default).
    pub payment_method: Option<&'a str>,
    /// Ours, kept by the gateway and sent back in events.
    pub metadata: Vec<(&'static str, &'a str)>,
    /// Sent as the gateway's idempotency key.
    pub idempotency_key: &'a str,
}

/// A one-off payment to create (a tip).
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    /// Minor units.
    pub amount: i64,
    /// Lowercase ISO code.
    pub currency: &'a str,
    /// Pay at once with this payment method (else the browser confirms with the client
    /// secret).
    pub payment_method: Option<&'a str>,
    /// The payer's customer (a payment method saved for a customer is only usable with
    /// that customer).
    pub customer: Option<&'a str>,
    /// Ours, kept by the gateway and sent back in events.
    pub metadata: Vec<(&'static str, &'a str)>,
    /// Sent as the gateway's idempotency key.
    pub idempotency_key: &'a str,
}

/// A gateway event, verified and reduced to what the control plane acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The gateway's event id (applied once).
    pub id: String,
    /// Its type as the gateway names it.
    pub kind: String,
    /// When the gateway made it, Unix seconds (orders state changes).
    pub created: i64,
    /// What it says.
    pub fact: Fact,
}

/// What an event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A subscription's state (created, updated, deleted).
    Subscription {
        /// The gateway's subscription id.
        id: String,
        /// Its state in the event.
        status: SubStatus,
        /// Our subscription id from its metadata (an event may arrive before the
        /// subscribe request has stored the gateway's id).
        ours: Option<String>,
    },
    /// A subscription's invoice was paid: revenue.
    InvoicePaid {
        /// The invoice (the ledger's idempotency key).
        invoice: String,
        /// Its subscription.
        subscription: String,
        /// Amount paid, minor units.
        amount: i64,
        /// Lowercase ISO code.
        currency: String,
    },
    /// A one-off payment succeeded (a tip when its metadata says so).
    PaymentSucceeded {
        /// The payment's id.
        id: String,
        /// Amount received, minor units.
        amount: i64,
        /// Lowercase ISO code.
        currency: String,
        /// Our tip id from its metadata, if it is a tip.
        tip: Option<String>,
    },
    /// Anything else: acknowledged, nothing to do.
    Ignored,
}

/// A payment gateway.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug + 'static {
    /// Its name in ledger accounts (`gateway:<name>`) and event records.
    fn name(&self) -> &'static str;

    /// A customer for a user.
    fn create_customer<'a>(
        &'a self,
        user_id: &'a str,
        email: &'a str,
    ) -> BoxFuture<'a, Result<String, GatewayError>>;

    /// A tier's product and recurring price.
    fn create_tier<'a>(
        &'a self,
        tier: NewTier<'a>,
    ) -> BoxFuture<'a, Result<TierRefs, GatewayError>>;

    /// Stops offering a tier's price (subscribers keep theirs).
    fn archive_tier<'a>(&'a self, refs: &'a TierRefs) -> BoxFuture<'a, Result<(), GatewayError>>;

    /// Subscribes a customer to a price.
    fn subscribe<'a>(
        &'a self,
        req: NewSubscription<'a>,
    ) -> BoxFuture<'a, Result<Created, GatewayError>>;

    /// Cancels a subscription now; returns its state as the gateway reports it.
    fn cancel<'a>(&'a self, subscription: &'a str) -> BoxFuture<'a, Result<Created, GatewayError>>;

    /// Starts saving a card for a customer: the answer's client secret lets the
    /// gateway's card form in the browser confirm it (Stripe: a SetupIntent and
    /// `stripe.confirmCardSetup`), which makes the payment method that subscribe and tip
    /// requests then name.
    fn setup_card<'a>(&'a self, customer: &'a str) -> BoxFuture<'a, Result<Created, GatewayError>>;

    /// A one-off payment.
    fn pay<'a>(&'a self, req: NewPayment<'a>) -> BoxFuture<'a, Result<Created, GatewayError>>;

    /// Verifies a webhook request's signature (before anything reads the body) and
    /// parses its event. `now`: Unix seconds.
    fn event(&self, signature: Option<&str>, body: &[u8], now: i64) -> Result<Event, WebhookError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use SubStatus::*;

    #[test]
    fn newer_reports_win_ties_go_forward_and_canceled_is_final() {
        assert!(supersedes(Incomplete, 10, Active, 10));
        assert!(!supersedes(Active, 10, Incomplete, 10));
        assert!(supersedes(Active, 10, Incomplete, 11));
        assert!(!supersedes(Active, 11, PastDue, 10));
        assert!(supersedes(Active, 10, Canceled, 10));
        assert!(!supersedes(Canceled, 10, Active, 99));
        assert!(!supersedes(Active, 10, Active, 10));
    }
}

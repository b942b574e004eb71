//! The engine's one error type. The HTTP edge maps each variant to a status once.

/// What can go wrong when opening, changing or closing a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    /// The SDP offer could not be parsed or accepted; the reason is safe to show.
    #[error("bad SDP offer: {0}")]
    BadSdp(String),
    /// The trickle/restart fragment could not be understood.
    #[error("bad ICE fragment: {0}")]
    BadFragment(String),
    /// The stream already has a publisher.
    #[error("stream is already being published")]
    StreamBusy,
    /// No such session (never existed, or ended).
    #[error("no such session")]
    NoSuchSession,
    /// The node's session limit is reached.
    #[error("session limit reached")]
    AtCapacity,
    /// The ICE restart named an ETag that is not current.
    #[error("the session changed since that ETag")]
    EtagMismatch,
    /// A worker did not answer (stopped or overloaded).
    #[error("media worker unavailable")]
    WorkerUnavailable,
    /// A socket or thread could not be set up.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

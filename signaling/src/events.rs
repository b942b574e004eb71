//! WHEP core extensions: server-sent events about the stream, and layer selection.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use sfu::forward::timeline::Timeline;
use sfu::{Role, SessionId, StreamStatus, ViewerStatus};
use tokio::sync::watch;

use crate::cues::CueFeed;
use crate::error::ApiError;
use crate::resource::{parse_layer, require_content_type};
use crate::AppState;

fn viewer(st: &AppState, stream: &str, id: &str) -> Result<SessionId, ApiError> {
    let id: SessionId = id.parse().map_err(|_| ApiError::NotFound)?;
    match st.node.session_stream(id, Role::Viewer) {
        Some(s) if s == stream => Ok(id),
        _ => Err(ApiError::NotFound),
    }
}

/// The events that turn `last` into `cur`.
pub fn diff(last: Option<&StreamStatus>, cur: &StreamStatus, out: &mut VecDeque<Event>) {
    if last.map(|l| l.active) != Some(cur.active) {
        let name = if cur.active { "active" } else { "inactive" };
        out.push_back(Event::default().event(name).data("{}"));
    }
    if last.map(|l| &l.layers) != Some(&cur.layers) {
        let data = json!({ "video": { "active": layers_json(&cur.layers), "inactive": [] } });
        out.push_back(Event::default().event("layers").data(data.to_string()));
    }
    if last.map(|l| l.viewers) != Some(cur.viewers) {
        let data = json!({ "viewercount": cur.viewers });
        out.push_back(Event::default().event("viewercount").data(data.to_string()));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The events that turn a viewer's allocation `last` into `cur`: `paused` when its path
/// carries no video layer (audio goes on), `resumed` when video comes back, `allocation`
/// with the rank of the layer it is now sent and, when its frame rate is reduced, the
/// highest temporal layer (`temporal`).
pub fn diff_viewer(last: Option<&ViewerStatus>, cur: &ViewerStatus, out: &mut VecDeque<Event>) {
    let was_paused = last.is_some_and(|l| l.paused);
    // A feed's first word, once the allocator has decided, is the whole state: a player
    // that reconnects after a pause learns it is over.
    let first = last.is_none() && (cur.paused || cur.rank.is_some());
    if cur.paused != was_paused || first {
        let name = if cur.paused { "paused" } else { "resumed" };
        out.push_back(Event::default().event(name).data("{}"));
    }
    let moved = last.is_none_or(|l| (l.rank, l.temporal) != (cur.rank, cur.temporal));
    if let Some(rank) = cur.rank.filter(|_| moved) {
        let data = match cur.temporal {
            Some(t) => json!({ "rank": rank, "temporal": t }),
            None => json!({ "rank": rank }),
        };
        out.push_back(Event::default().event("allocation").data(data.to_string()));
    }
}

/// A publisher's active layers, lowest first, as the API shows them.
pub fn layers_json(layers: &[sfu::forward::layers::EncodingInfo]) -> Vec<serde_json::Value> {
    layers
        .iter()
        .enumerate()
        .map(|(rank, l)| json!({ "encodingId": l.rid, "rank": rank, "bitrate": l.bitrate_bps }))
        .collect()
}

/// What woke a feed, and whether its channel is still open.
enum Woke {
    Stream(bool),
    Viewer(bool),
    Timeline(bool),
    Draining(bool),
}

struct Feed {
    st: AppState,
    id: SessionId,
    rx: watch::Receiver<StreamStatus>,
    last: Option<StreamStatus>,
    /// The cues told, and the breaks to come, placed on the viewer's timeline.
    cues: CueFeed,
    /// Where the viewer's video timestamps stand on the wall clock.
    timeline: watch::Receiver<Option<Timeline>>,
    timeline_open: bool,
    /// Who watches (a user id), when the session's grant said: for cues' `skip`.
    who: Option<String>,
    /// The viewer's own allocation, while its session has one.
    viewer: watch::Receiver<ViewerStatus>,
    viewer_open: bool,
    last_viewer: Option<ViewerStatus>,
    queue: VecDeque<Event>,
    /// The node is drained: `move` is sent once, and the player re-joins elsewhere.
    draining: watch::Receiver<bool>,
    moved: bool,
    /// The session ended on the server: `ended` is queued, then the stream ends.
    done: bool,
    /// When to tell `ended` once the session's status is gone: a moment later, so what
    /// its stream says last (`inactive` when the broadcast ended with it) goes first.
    ended_at: Option<tokio::time::Instant>,
}

/// How long after a session's own status is gone its `ended` is told.
const ENDED_AFTER: Duration = Duration::from_millis(300);

/// GET /whep/{stream}/{session}/events: an `EventSource` stream that ends with the session
/// (`ended` last when the server ended it).
pub async fn events(
    State(st): State<AppState>,
    Path((stream, id)): Path<(String, String)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = viewer(&st, &stream, &id)?;
    let rx = st.node.watch(&stream).ok_or(ApiError::NotFound)?;
    let draining = st.node.watch_draining();
    let viewer_rx = st.node.watch_viewer(id).ok_or(ApiError::NotFound)?;
    let timeline = st.node.watch_timeline(id).ok_or(ApiError::NotFound)?;
    let feed = Feed {
        who: st.viewer_of(id),
        st,
        id,
        rx,
        last: None,
        cues: CueFeed::default(),
        timeline,
        timeline_open: true,
        viewer: viewer_rx,
        viewer_open: true,
        last_viewer: None,
        queue: VecDeque::new(),
        draining,
        moved: false,
        done: false,
        ended_at: None,
    };
    let s = futures_util::stream::unfold(feed, |mut f| async move {
        loop {
            if let Some(ev) = f.queue.pop_front() {
                return Some((Ok(ev), f));
            }
            if f.done {
                return None;
            }
            if !f.moved && *f.draining.borrow_and_update() {
                f.moved = true;
                f.queue.push_back(Event::default().event("move").data("{}"));
                continue;
            }
            if f.last.is_some() {
                let quiet = f.ended_at.map_or(Duration::from_secs(1), |t| {
                    t.saturating_duration_since(tokio::time::Instant::now())
                });
                let woke = tokio::time::timeout(quiet, async {
                    tokio::select! {
                        r = f.rx.changed() => Woke::Stream(r.is_ok()),
                        r = f.viewer.changed(), if f.viewer_open => Woke::Viewer(r.is_ok()),
                        r = f.timeline.changed(), if f.timeline_open => Woke::Timeline(r.is_ok()),
                        r = f.draining.changed(), if !f.moved => Woke::Draining(r.is_ok()),
                    }
                })
                .await;
                match woke {
                    Ok(Woke::Stream(true) | Woke::Viewer(true)) => {}
                    // The session's own status is gone with it, but what its stream says
                    // last (`inactive` when the broadcast was ended) must still be told.
                    Ok(Woke::Viewer(false)) => {
                        f.viewer_open = false;
                        f.ended_at = Some(tokio::time::Instant::now() + ENDED_AFTER);
                    }
                    Ok(Woke::Draining(true)) => continue,
                    Ok(Woke::Timeline(open)) => {
                        f.timeline_open = open;
                        if let Some(t) = *f.timeline.borrow_and_update() {
                            f.cues.retime(&t, now_ms(), &mut f.queue);
                        }
                        continue;
                    }
                    Ok(Woke::Stream(false) | Woke::Draining(false)) => return None,
                    Err(_) => {
                        // Quiet for a second (or the session's status is gone): the
                        // session ended on the server (a revocation, a closed paywall, a
                        // ban)? Then `ended` goes last, so the player need not wait for
                        // its connection to die.
                        f.ended_at = None;
                        if f.st.node.session_stream(f.id, Role::Viewer).is_none() {
                            f.done = true;
                            f.queue
                                .push_back(Event::default().event("ended").data("{}"));
                        }
                        continue;
                    }
                }
            }
            let cur = f.rx.borrow_and_update().clone();
            diff(f.last.as_ref(), &cur, &mut f.queue);
            let timeline = *f.timeline.borrow_and_update();
            let who = f.who.as_deref();
            f.cues
                .diff(&cur, who, timeline.as_ref(), now_ms(), &mut f.queue);
            f.last = Some(cur);
            let cur = *f.viewer.borrow_and_update();
            diff_viewer(f.last_viewer.as_ref(), &cur, &mut f.queue);
            f.last_viewer = Some(cur);
        }
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::default()))
}

/// POST /whep/{stream}/{session}/events: the draft's subscription step; answers with the
/// URL of the event stream.
pub async fn subscribe(
    State(st): State<AppState>,
    Path((stream, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = viewer(&st, &stream, &id)?;
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/whep/{stream}/{id}/events")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Body of a layer request: `{"encodingId": "h"}` or `{"layer": "low"}`; `{}` is automatic.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LayerRequest {
    /// A publisher's RID.
    pub encoding_id: Option<String>,
    /// `low`, `mid`, `high` or `auto`.
    pub layer: Option<String>,
}

/// POST /whep/{stream}/{session}/layer
pub async fn select_layer(
    State(st): State<AppState>,
    Path((stream, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let id = viewer(&st, &stream, &id)?;
    require_content_type(&headers, "application/json")?;
    let req: LayerRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("layer request: {e}")))?;
    let name = req.encoding_id.or(req.layer).unwrap_or_default();
    st.node.select_layer(id, parse_layer(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu::forward::layers::EncodingInfo;

    #[test]
    fn diff_emits_only_changes() {
        let mut q = VecDeque::new();
        let a = StreamStatus::default();
        diff(None, &a, &mut q);
        assert_eq!(q.len(), 3, "inactive, layers, viewercount at start");
        q.clear();
        let b = StreamStatus {
            active: true,
            layers: vec![EncodingInfo {
                encoding: 0,
                rid: Some("l".into()),
                bitrate_bps: 1,
                temporal: Vec::new(),
            }],
            viewers: 0,
            cues: Vec::new(),
        };
        diff(Some(&a), &b, &mut q);
        assert_eq!(q.len(), 2, "active and layers");
        q.clear();
        diff(Some(&b), &b, &mut q);
        assert!(q.is_empty());
    }

    #[test]
    fn viewer_events_say_paused_resumed_and_the_rank() {
        let names = |q: &VecDeque<Event>| format!("{q:?}");
        let mut q = VecDeque::new();
        diff_viewer(None, &ViewerStatus::default(), &mut q);
        assert!(q.is_empty(), "nothing decided yet: nothing to say");
        let top = ViewerStatus {
            paused: false,
            rank: Some(2),
            temporal: None,
        };
        diff_viewer(None, &top, &mut q);
        assert!(
            names(&q).contains("allocation") && names(&q).contains("resumed"),
            "a new feed is told the whole state"
        );
        q.clear();
        let paused = ViewerStatus {
            paused: true,
            rank: None,
            temporal: None,
        };
        diff_viewer(Some(&top), &paused, &mut q);
        assert_eq!(q.len(), 1);
        assert!(names(&q).contains("paused"));
        q.clear();
        let low = ViewerStatus {
            paused: false,
            rank: Some(0),
            temporal: None,
        };
        diff_viewer(Some(&paused), &low, &mut q);
        assert!(names(&q).contains("resumed") && names(&q).contains("allocation"));
        q.clear();
        diff_viewer(Some(&low), &low, &mut q);
        assert!(q.is_empty());
        // The same layer at a lower frame rate is another allocation.
        let slower = ViewerStatus {
            temporal: Some(0),
            ..low
        };
        diff_viewer(Some(&low), &slower, &mut q);
        assert!(names(&q).contains("allocation") && names(&q).contains("temporal"));
    }
}

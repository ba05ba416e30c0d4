//! The shadowing relay: pairs a device's WebSocket with a viewer's for one session id and
//! copies messages both ways.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::splice::WebSocketClose;
use crate::ticket::{TicketProblem, check_ticket};

/// Close code sent to a peer whose partner did not arrive within
/// [`RelayConfig::pairing_timeout`] (or left before the pairing was made).
pub const CLOSE_NO_PARTNER: u16 = 4408;

/// Close code sent to a peer when its partner's connection ended without a close frame
/// (1001, "going away").
pub const CLOSE_PARTNER_GONE: u16 = 1001;

/// Fewest characters in a session id: 22 base64url characters carry 132 bits (and 32 hex
/// characters, a subset of the same alphabet, carry 128).
pub const SESSION_ID_MIN_LEN: usize = 22;

/// Most characters in a session id.
pub const SESSION_ID_MAX_LEN: usize = 128;

/// Bytes of messages kept from the first peer while it waits for its partner (a VNC server
/// speaks first); beyond this the relay stops reading from it until the pairing is made.
const EARLY_LIMIT: usize = 1024 * 1024;

/// The two ends of a relay session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayRole {
    /// The shadowed machine (the VNC server side); may be required to present a verified
    /// client certificate.
    Device,
    /// The person watching (the VNC viewer side).
    Viewer,
}

impl RelayRole {
    /// `"device"` or `"viewer"`, as written in the `role` query parameter and in tickets.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Device => "device",
            Self::Viewer => "viewer",
        }
    }
}

impl fmt::Display for RelayRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RelayRole {
    type Err = RelayError;

    fn from_str(role: &str) -> Result<Self, RelayError> {
        match role {
            "device" => Ok(Self::Device),
            "viewer" => Ok(Self::Viewer),
            other => Err(RelayError::Role {
                found: other.to_owned(),
            }),
        }
    }
}

/// Why the relay refused a peer before its upgrade. [`RelayError::status`] is the HTTP
/// answer to give instead of 101.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The request path is not `<prefix>/<session-id>`.
    #[error("not a relay path: expected <prefix>/<session-id>")]
    Path,
    /// The session id is too short, too long, or has a character outside base64url.
    #[error(
        "session id of {len} characters; expected {SESSION_ID_MIN_LEN} to {SESSION_ID_MAX_LEN} \
         characters of A-Z a-z 0-9 - _"
    )]
    SessionId {
        /// Its length in bytes.
        len: usize,
    },
    /// The `role` query parameter is missing, repeated, or not `device` / `viewer`.
    #[error("role {found:?}; expected `device` or `viewer`")]
    Role {
        /// What was given (empty when missing).
        found: String,
    },
    /// Tickets are required and none was given.
    #[error("a ticket is required")]
    MissingTicket,
    /// The ticket is not `<expires>.<signature>` or its signature does not match the
    /// session id and role.
    #[error("ticket is malformed or not signed for this session and role")]
    BadTicket,
    /// The ticket's expiry time has passed.
    #[error("ticket has expired")]
    ExpiredTicket,
    /// Devices must present a verified client certificate, and this one did not.
    #[error("the device role requires a verified client certificate")]
    DeviceNotVerified,
    /// The session already has a peer of this role waiting, or is already paired.
    #[error("session already has its {role} or is already paired")]
    SessionTaken {
        /// The role that asked.
        role: RelayRole,
    },
}

impl RelayError {
    /// The HTTP status to answer with: 404 for a path outside the relay, 400 for a
    /// malformed session id or role, 403 for tickets and an unverified device, 409 when the
    /// session is taken.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Path => StatusCode::NOT_FOUND,
            Self::SessionId { .. } | Self::Role { .. } => StatusCode::BAD_REQUEST,
            Self::MissingTicket
            | Self::BadTicket
            | Self::ExpiredTicket
            | Self::DeviceNotVerified => StatusCode::FORBIDDEN,
            Self::SessionTaken { .. } => StatusCode::CONFLICT,
        }
    }
}

/// How a relay behaves.
#[derive(Clone)]
pub struct RelayConfig {
    /// How long the first peer waits for its partner before it is closed with
    /// [`CLOSE_NO_PARTNER`]. Default 30 s.
    pub pairing_timeout: Duration,
    /// After one side closed, how long the relay waits for the other side to complete
    /// its close handshake. Default 5 s.
    pub close_timeout: Duration,
    /// When set, every peer must present a ticket signed with this secret
    /// ([`sign_ticket`](crate::sign_ticket)). Default none.
    pub ticket_secret: Option<Vec<u8>>,
    /// Whether the device role needs a verified client certificate. Default false.
    pub require_verified_device: bool,
    /// Largest message accepted from a peer, in bytes. Default 16 MiB.
    pub max_message_size: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            pairing_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            ticket_secret: None,
            require_verified_device: false,
            max_message_size: 16 * 1024 * 1024,
        }
    }
}

impl fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayConfig")
            .field("pairing_timeout", &self.pairing_timeout)
            .field("close_timeout", &self.close_timeout)
            .field(
                "ticket_secret",
                &self.ticket_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("require_verified_device", &self.require_verified_device)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

/// Any upgraded connection, boxed so that the two peers of a session may differ in type.
trait Io: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Io for T {}
type Ws = WebSocketStream<Pin<Box<dyn Io>>>;

/// What the second peer hands the first: its socket, and where to send the report.
struct Handoff {
    ws: Ws,
    report: oneshot::Sender<RelayReport>,
}

impl fmt::Debug for Handoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoff").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Slot {
    token: u64,
    waiting: RelayRole,
    /// Taken by the partner when it is admitted; `None` once the session is paired.
    handoff: Option<oneshot::Sender<Handoff>>,
}

type Sessions = Arc<Mutex<HashMap<String, Slot>>>;

/// The rendezvous point. Cheap to clone; clones share the sessions.
#[derive(Debug, Clone)]
pub struct Relay {
    config: Arc<RelayConfig>,
    sessions: Sessions,
    next_token: Arc<AtomicU64>,
}

impl Relay {
    /// A relay with no sessions.
    pub fn new(config: RelayConfig) -> Self {
        Self {
            config: Arc::new(config),
            sessions: Sessions::default(),
            next_token: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Sessions with a peer waiting or a pairing running.
    pub fn sessions(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Parses a request target `<prefix>/<session-id>?role=<role>[&ticket=<ticket>]` and
    /// calls [`Relay::admit`]. `prefix` is the route's path prefix, with or without its
    /// trailing `/`. Other query parameters are ignored.
    pub fn admit_uri(
        &self,
        prefix: &str,
        uri: &http::Uri,
        device_verified: bool,
        now: SystemTime,
    ) -> Result<Admission, RelayError> {
        let prefix = prefix.trim_end_matches('/');
        let session_id = uri
            .path()
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or(RelayError::Path)?;
        let (mut role, mut ticket, mut roles) = (None, None, 0);
        for pair in uri.query().unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("role", value)) => {
                    role = Some(value);
                    roles += 1;
                }
                Some(("ticket", value)) => ticket = Some(value),
                _ => {}
            }
        }
        let role = match (role, roles) {
            (Some(role), 1) => role.parse()?,
            _ => {
                return Err(RelayError::Role {
                    found: role.unwrap_or("").to_owned(),
                });
            }
        };
        self.admit(session_id, role, ticket, device_verified, now)
    }

    /// Decides whether a peer may join `session_id` as `role`, before its upgrade is
    /// answered. On success the session is reserved for it until the returned
    /// [`Admission`] is run to its end or dropped; answer 101 and call
    /// [`Admission::run`] with the upgraded connection. On error answer
    /// [`RelayError::status`].
    ///
    /// `device_verified` tells whether the connection presented a client certificate
    /// that verified; `now` is checked against ticket expiry.
    pub fn admit(
        &self,
        session_id: &str,
        role: RelayRole,
        ticket: Option<&str>,
        device_verified: bool,
        now: SystemTime,
    ) -> Result<Admission, RelayError> {
        check_session_id(session_id)?;
        if let Some(secret) = &self.config.ticket_secret {
            let ticket = ticket.ok_or(RelayError::MissingTicket)?;
            check_ticket(secret, ticket, session_id, role, now).map_err(
                |problem| match problem {
                    TicketProblem::Malformed | TicketProblem::Signature => RelayError::BadTicket,
                    TicketProblem::Expired => RelayError::ExpiredTicket,
                },
            )?;
        }
        if role == RelayRole::Device && self.config.require_verified_device && !device_verified {
            return Err(RelayError::DeviceNotVerified);
        }
        let mut sessions = lock(&self.sessions);
        let side = match sessions.get_mut(session_id) {
            None => {
                let token = self.next_token.fetch_add(1, Ordering::Relaxed);
                let (handoff, arrival) = oneshot::channel();
                sessions.insert(
                    session_id.to_owned(),
                    Slot {
                        token,
                        waiting: role,
                        handoff: Some(handoff),
                    },
                );
                Side::First {
                    arrival,
                    _guard: SlotGuard {
                        sessions: Arc::clone(&self.sessions),
                        session_id: session_id.to_owned(),
                        token,
                    },
                }
            }
            Some(slot) if slot.waiting != role => match slot.handoff.take() {
                Some(handoff) => Side::Second { handoff },
                None => return Err(RelayError::SessionTaken { role }),
            },
            Some(_) => return Err(RelayError::SessionTaken { role }),
        };
        Ok(Admission {
            role,
            side,
            config: Arc::clone(&self.config),
        })
    }
}

fn lock(sessions: &Sessions) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
    sessions.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A session id is 22 to 128 characters of the base64url alphabet (RFC 4648 §5, no
/// padding). It must come from a cryptographic random source: whoever knows it can join.
fn check_session_id(session_id: &str) -> Result<(), RelayError> {
    let len = session_id.len();
    let alphabet = session_id
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if (SESSION_ID_MIN_LEN..=SESSION_ID_MAX_LEN).contains(&len) && alphabet {
        Ok(())
    } else {
        Err(RelayError::SessionId { len })
    }
}

/// Frees the session when the first peer's admission ends, unless the id was taken by a
/// newer session in the meantime.
#[derive(Debug)]
struct SlotGuard {
    sessions: Sessions,
    session_id: String,
    token: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut sessions = lock(&self.sessions);
        if sessions
            .get(&self.session_id)
            .is_some_and(|slot| slot.token == self.token)
        {
            sessions.remove(&self.session_id);
        }
    }
}

#[derive(Debug)]
enum Side {
    /// Waits for the partner and runs the pairing.
    First {
        arrival: oneshot::Receiver<Handoff>,
        _guard: SlotGuard,
    },
    /// Hands its socket to the first peer.
    Second { handoff: oneshot::Sender<Handoff> },
}

/// A peer admitted to a session: the session is held for it until this is run or dropped.
#[derive(Debug)]
pub struct Admission {
    role: RelayRole,
    side: Side,
    config: Arc<RelayConfig>,
}

/// Why a relayed session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEnd {
    /// `by` closed (with `code`, `None` when its close frame had none, or
    /// [`CLOSE_PARTNER_GONE`] when its connection ended without one); the other side was
    /// closed with the same code.
    Closed {
        /// Who closed first.
        by: RelayRole,
        /// The close code passed on.
        code: Option<u16>,
    },
    /// No partner arrived in time (or the first peer left before it did); the peer was
    /// closed with [`CLOSE_NO_PARTNER`], or had left.
    NoPartner,
    /// The relay itself closed the session ([`Admission::run_until`]): each peer was sent
    /// a close frame with `code`.
    ClosedByRelay {
        /// The close code sent.
        code: u16,
    },
    /// A send failed.
    Error,
}

/// What a session carried, for the log line. Both peers' [`Admission::run`] return the same
/// report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    /// Payload bytes of data messages from the device to the viewer.
    pub device_to_viewer: u64,
    /// Payload bytes of data messages from the viewer to the device.
    pub viewer_to_device: u64,
    /// Why it ended.
    pub end: RelayEnd,
}

impl RelayReport {
    fn ended(end: RelayEnd) -> Self {
        Self {
            device_to_viewer: 0,
            viewer_to_device: 0,
            end,
        }
    }
}

impl Admission {
    /// The role it was admitted with.
    pub fn role(&self) -> RelayRole {
        self.role
    }

    /// Speaks WebSocket (server side) over `io`, a connection whose upgrade was already
    /// answered with 101, waits for the partner, and relays messages until one side
    /// closes. Returns when the session is over, for both peers.
    pub async fn run<S>(self, io: S) -> RelayReport
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.run_until(io, std::future::pending()).await
    }

    /// As [`run`](Self::run), and when `close` completes the relay closes the session
    /// itself (a proxy shutting down): a peer still waiting for its partner, or both peers
    /// of a pair, get a close frame with the requested code and reason, and the relay
    /// waits up to the request's timeout for their answers. A paired session is closed by
    /// the `close` of the peer that came first; the second peer's is not used once paired.
    pub async fn run_until<S, F>(self, io: S, close: F) -> RelayReport
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
        F: Future<Output = WebSocketClose> + Send,
    {
        tokio::pin!(close);
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(self.config.max_message_size))
            .max_frame_size(Some(self.config.max_message_size));
        let io: Pin<Box<dyn Io>> = Box::pin(io);
        let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config)).await;
        match self.side {
            Side::Second { handoff } => {
                let (report_tx, report_rx) = oneshot::channel();
                match handoff.send(Handoff {
                    ws,
                    report: report_tx,
                }) {
                    Ok(()) => report_rx
                        .await
                        .unwrap_or(RelayReport::ended(RelayEnd::Error)),
                    Err(Handoff { mut ws, .. }) => {
                        close_with(&mut ws, CLOSE_NO_PARTNER, "no partner").await;
                        RelayReport::ended(RelayEnd::NoPartner)
                    }
                }
            }
            Side::First { arrival, _guard } => {
                let waited = wait_for_partner(
                    &mut ws,
                    arrival,
                    self.config.pairing_timeout,
                    close.as_mut(),
                );
                let (
                    Handoff {
                        ws: partner,
                        report: report_tx,
                    },
                    early,
                ) = match waited.await {
                    Waited::Partner(handoff, early) => (*handoff, early),
                    Waited::Ended(end) => {
                        if end == RelayEnd::NoPartner {
                            close_with(&mut ws, CLOSE_NO_PARTNER, "no partner").await;
                        }
                        return RelayReport::ended(end);
                    }
                    Waited::Close(request) => {
                        let closing = close_with(&mut ws, request.code, request.reason);
                        let _ = tokio::time::timeout(request.timeout, closing).await;
                        return RelayReport::ended(RelayEnd::ClosedByRelay { code: request.code });
                    }
                };
                let report = pair(
                    self.role,
                    ws,
                    partner,
                    early,
                    self.config.close_timeout,
                    close.as_mut(),
                )
                .await;
                let _ = report_tx.send(report);
                report
            }
        }
    }
}

enum Waited {
    Partner(Box<Handoff>, Vec<Message>),
    Ended(RelayEnd),
    Close(WebSocketClose),
}

async fn wait_for_partner<F>(
    ws: &mut Ws,
    mut arrival: oneshot::Receiver<Handoff>,
    timeout: Duration,
    mut close: Pin<&mut F>,
) -> Waited
where
    F: Future<Output = WebSocketClose>,
{
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let (mut early, mut early_bytes) = (Vec::new(), 0);
    loop {
        tokio::select! {
            handoff = &mut arrival => {
                return match handoff {
                    Ok(handoff) => Waited::Partner(Box::new(handoff), early),
                    Err(_) => Waited::Ended(RelayEnd::NoPartner),
                };
            }
            message = ws.next(), if early_bytes < EARLY_LIMIT => match message {
                Some(Ok(message @ (Message::Binary(_) | Message::Text(_)))) => {
                    early_bytes += message.len();
                    early.push(message);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    // Left before the pairing; nobody to tell.
                    let _ = ws.close(None).await;
                    return Waited::Ended(RelayEnd::NoPartner);
                }
                Some(Ok(_)) => {}
            },
            () = &mut deadline => return Waited::Ended(RelayEnd::NoPartner),
            request = close.as_mut() => return Waited::Close(request),
        }
    }
}

async fn close_with(ws: &mut Ws, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = ws.close(Some(frame)).await;
        // Read until the peer answers the close (or goes).
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// How one direction ended.
#[derive(Debug, Clone, Copy)]
enum DirectionEnd {
    Closed(Option<u16>),
    Gone,
    SendFailed,
}

/// How a paired session's relaying stopped.
enum Stopped {
    /// A direction ended (`by` closed or went).
    Ended(RelayRole, DirectionEnd),
    /// The relay was asked to close the session.
    Close(WebSocketClose),
}

async fn pair<F>(
    first_role: RelayRole,
    first: Ws,
    second: Ws,
    early: Vec<Message>,
    close_timeout: Duration,
    close: Pin<&mut F>,
) -> RelayReport
where
    F: Future<Output = WebSocketClose>,
{
    let (mut first_sink, mut first_stream) = first.split();
    let (mut second_sink, mut second_stream) = second.split();
    let (first_to_second, second_to_first) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut sent_early = true;
    for message in early {
        let len = message.len() as u64;
        if second_sink.send(message).await.is_err() {
            sent_early = false;
            break;
        }
        first_to_second.fetch_add(len, Ordering::Relaxed);
    }
    let end = if sent_early {
        let stopped = {
            let forward = one_way(&mut first_stream, &mut second_sink, &first_to_second);
            let backward = one_way(&mut second_stream, &mut first_sink, &second_to_first);
            tokio::pin!(forward, backward);
            tokio::select! {
                ended = &mut forward => {
                    let _ = tokio::time::timeout(close_timeout, backward).await;
                    Stopped::Ended(first_role, ended)
                }
                ended = &mut backward => {
                    let _ = tokio::time::timeout(close_timeout, forward).await;
                    Stopped::Ended(other(first_role), ended)
                }
                // Dropping the directions here cuts no message short: a message being
                // sent is already whole in the sink's buffer, flushed before the close.
                request = close => Stopped::Close(request),
            }
        };
        match stopped {
            Stopped::Ended(by, DirectionEnd::Closed(code)) => RelayEnd::Closed { by, code },
            Stopped::Ended(by, DirectionEnd::Gone) => RelayEnd::Closed {
                by,
                code: Some(CLOSE_PARTNER_GONE),
            },
            Stopped::Ended(_, DirectionEnd::SendFailed) => RelayEnd::Error,
            Stopped::Close(request) => {
                let frame = CloseFrame {
                    code: CloseCode::from(request.code),
                    reason: request.reason.into(),
                };
                let _ = tokio::time::timeout(request.timeout, async {
                    let _ = tokio::join!(
                        first_sink.send(Message::Close(Some(frame.clone()))),
                        second_sink.send(Message::Close(Some(frame))),
                    );
                    // Read each peer until its answer (or its end); what else it sends
                    // has nowhere to go.
                    tokio::join!(
                        until_close(&mut first_stream),
                        until_close(&mut second_stream)
                    );
                })
                .await;
                RelayEnd::ClosedByRelay { code: request.code }
            }
        }
    } else {
        RelayEnd::Error
    };
    // Flush any close reply still queued, without waiting on a peer that went silent.
    let _ = tokio::time::timeout(close_timeout, async {
        let _ = first_sink.close().await;
        let _ = second_sink.close().await;
    })
    .await;
    let (first_to_second, second_to_first) = (
        first_to_second.load(Ordering::Relaxed),
        second_to_first.load(Ordering::Relaxed),
    );
    let (device_to_viewer, viewer_to_device) = match first_role {
        RelayRole::Device => (first_to_second, second_to_first),
        RelayRole::Viewer => (second_to_first, first_to_second),
    };
    RelayReport {
        device_to_viewer,
        viewer_to_device,
        end,
    }
}

/// Reads until a close frame or the end of the stream.
async fn until_close<R>(source: &mut R)
where
    R: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    // Bounded by the caller's timeout.
    while let Some(Ok(message)) = source.next().await {
        if matches!(message, Message::Close(_)) {
            return;
        }
    }
}

fn other(role: RelayRole) -> RelayRole {
    match role {
        RelayRole::Device => RelayRole::Viewer,
        RelayRole::Viewer => RelayRole::Device,
    }
}

async fn one_way<R, W>(source: &mut R, sink: &mut W, copied: &AtomicU64) -> DirectionEnd
where
    R: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
    W: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    loop {
        match source.next().await {
            Some(Ok(message @ (Message::Binary(_) | Message::Text(_)))) => {
                let len = message.len() as u64;
                if sink.send(message).await.is_err() {
                    return DirectionEnd::SendFailed;
                }
                copied.fetch_add(len, Ordering::Relaxed);
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map(|frame| u16::from(frame.code));
                let _ = sink.send(Message::Close(frame)).await;
                return DirectionEnd::Closed(code);
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                let frame = CloseFrame {
                    code: CloseCode::from(CLOSE_PARTNER_GONE),
                    reason: "partner gone".into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return DirectionEnd::Gone;
            }
        }
    }
}

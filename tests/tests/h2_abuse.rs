//! HTTP/2 frame-level abuse, written frame by frame over loopback.
//!
//! Each case talks HTTP/2 with prior knowledge (h2c) to a plain listener of a real proxy, with
//! frames built by hand here (a 9-byte frame header, HPACK literals without indexing), in
//! front of a real upstream that reports what reached it. Every loop is bounded in count and
//! in time, and every case ends by showing that another, well-behaved client is still served.
//!
//! - rapid reset (CVE-2023-44487): HEADERS then RST_STREAM, thousands of times;
//! - CONTINUATION flood (CVE-2024-27316 family): a header block that never ends;
//! - streams beyond `SETTINGS_MAX_CONCURRENT_STREAMS`;
//! - header lists over `max_header_size`, also as an HPACK dynamic-table amplification;
//! - PING and SETTINGS floods from a client that reads nothing;
//! - (and, for comparison, an HTTP/1.1 client that stops reading: the send timeout);
//! - a download to a client that opens no flow-control window, or stops reading its socket.

mod common;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::Proxy;
use gangway_e2e::clients::try_http2_request;
use gangway_e2e::origins::{RecordingOrigin, StreamingOrigin, expected_download_sha256};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};

// Frame types (RFC 9113 §6).
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const DATA: u8 = 0x0;

// Flags.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

// Settings identifiers (RFC 9113 §6.5.2).
const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

// Error codes (RFC 9113 §7).
const PROTOCOL_ERROR: u32 = 0x1;
const COMPRESSION_ERROR: u32 = 0x9;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The listener's `max_header_size` in these tests.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// The advertised concurrent stream limit the proxy is configured with.
const MAX_CONCURRENT_STREAMS: u32 = 100;

/// One frame: the 9-byte header (RFC 9113 §4.1) followed by the payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame payload fits in 24 bits");
    assert!(len < 1 << 24, "frame payload fits in 24 bits");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn settings_frame(settings: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in settings {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// An HPACK integer with an `prefix`-bit prefix, `flags` in the bits above it (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, prefix: u8, flags: u8, value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn hpack_string(out: &mut Vec<u8>, text: &[u8]) {
    hpack_int(out, 7, 0, text.len());
    out.extend_from_slice(text);
}

/// A literal header field without indexing, with a new name (RFC 7541 §6.2.2).
fn literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00);
    hpack_string(out, name.as_bytes());
    hpack_string(out, value);
}

/// A literal header field with incremental indexing, with a new name (RFC 7541 §6.2.1): it
/// enters the dynamic table at index 62.
fn literal_indexed(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x40);
    hpack_string(out, name.as_bytes());
    hpack_string(out, value);
}

/// The header block of `GET http://app.test<path>`, plus `extra` fields.
fn request_block(path: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    literal(&mut block, ":method", b"GET");
    literal(&mut block, ":scheme", b"http");
    literal(&mut block, ":authority", b"app.test");
    literal(&mut block, ":path", path.as_bytes());
    for (name, value) in extra {
        literal(&mut block, name, value);
    }
    block
}

/// A complete GET on `stream`: one HEADERS frame with END_HEADERS and END_STREAM.
fn get(stream: u32, path: &str) -> Vec<u8> {
    frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        stream,
        &request_block(path, &[]),
    )
}

/// A frame as read from the proxy.
#[derive(Debug, Clone)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }

    /// The last stream id a GOAWAY says was processed.
    fn last_stream(&self) -> Option<u32> {
        let bytes = self.payload.get(..4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?) & 0x7fff_ffff)
    }

    /// The parameters of a SETTINGS frame.
    fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|chunk| {
                (
                    u16::from_be_bytes([chunk[0], chunk[1]]),
                    u32::from_be_bytes([chunk[2], chunk[3], chunk[4], chunk[5]]),
                )
            })
            .collect()
    }

    /// The `:status` of a response HEADERS frame whose block starts with it, for the forms
    /// the proxy uses for a first response: an indexed static-table status (RFC 7541
    /// Appendix A, indices 8 to 14) or a literal with the static name `:status` and a
    /// plain or Huffman-coded value.
    fn status(&self) -> Option<u16> {
        if self.kind != HEADERS {
            return None;
        }
        let first = *self.payload.first()?;
        if first & 0x80 != 0 {
            return match first & 0x7f {
                8 => Some(200),
                9 => Some(204),
                10 => Some(206),
                11 => Some(304),
                12 => Some(400),
                13 => Some(404),
                14 => Some(500),
                _ => None,
            };
        }
        // Literal with indexing (0x40 | 8), without (0x08) or never indexed (0x18).
        if !matches!(first, 0x48 | 0x08 | 0x18) {
            return None;
        }
        let length = *self.payload.get(1)?;
        let len = usize::from(length & 0x7f);
        let value = self.payload.get(2..2 + len)?;
        let digits = if length & 0x80 != 0 {
            huffman_digits(value)?
        } else {
            String::from_utf8(value.to_vec()).ok()?
        };
        digits.parse().ok()
    }
}

/// Decodes a Huffman-coded string of decimal digits (RFC 7541 Appendix B: `0` to `2` are the
/// 5-bit codes 00000 to 00010, `3` to `9` the 6-bit codes 011001 to 011111).
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|byte| (0..8).rev().map(move |shift| (byte >> shift) & 1))
        .collect();
    let value = |from: usize, count: usize| -> Option<u8> {
        let slice = bits.get(from..from + count)?;
        Some(slice.iter().fold(0, |acc, bit| acc << 1 | bit))
    };
    let mut out = String::new();
    let mut at = 0;
    while at < bits.len() {
        if bits.len() - at < 8 && bits[at..].iter().all(|bit| *bit == 1) {
            break; // padding
        }
        match value(at, 5)? {
            code @ 0..=2 => {
                out.push(char::from(b'0' + code));
                at += 5;
            }
            _ => match value(at, 6)? {
                code @ 0b011001..=0b011111 => {
                    out.push(char::from(b'3' + code - 0b011001));
                    at += 6;
                }
                _ => return None,
            },
        }
    }
    Some(out)
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Frame> {
    let mut head = [0u8; 9];
    reader.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await?;
    Ok(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// An HTTP/2 connection to the proxy after the preface: the client's SETTINGS were sent,
/// the server's SETTINGS were read and acknowledged.
struct Connected {
    stream: TcpStream,
    server_settings: Vec<(u16, u32)>,
}

async fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> Connected {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    let mut hello = PREFACE.to_vec();
    hello.extend(settings_frame(settings));
    stream.write_all(&hello).await.expect("write the preface");
    let server_settings = timeout(Duration::from_secs(5), async {
        loop {
            let frame = read_frame(&mut stream)
                .await
                .expect("read the server's SETTINGS");
            if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                return frame.settings();
            }
        }
    })
    .await
    .expect("the server's SETTINGS within 5 s");
    stream
        .write_all(&frame(SETTINGS, ACK, 0, &[]))
        .await
        .expect("acknowledge the server's SETTINGS");
    Connected {
        stream,
        server_settings,
    }
}

/// What a reader saw until the connection ended or its time was up.
#[derive(Debug, Default)]
struct Seen {
    /// Every frame but PING acknowledgements, in order.
    frames: Vec<Frame>,
    ping_acks: usize,
    /// The connection ended (EOF or reset) rather than the wait running out.
    closed: bool,
}

impl Seen {
    fn goaway(&self) -> Option<&Frame> {
        self.frames.iter().find(|frame| frame.kind == GOAWAY)
    }

    fn resets(&self) -> impl Iterator<Item = &Frame> {
        self.frames.iter().filter(|frame| frame.kind == RST_STREAM)
    }
}

/// Reads frames until the connection ends or `wait` passes; `goaway` is set as soon as a
/// GOAWAY arrives, so that a flooding writer can stop.
fn spawn_reader<R>(mut reader: R, wait: Duration, goaway: Arc<AtomicBool>) -> JoinHandle<Seen>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let deadline = Instant::now() + wait;
        let mut seen = Seen::default();
        loop {
            match timeout_at(deadline, read_frame(&mut reader)).await {
                Err(_) => return seen,
                Ok(Err(_)) => {
                    seen.closed = true;
                    return seen;
                }
                Ok(Ok(frame)) => {
                    if frame.kind == PING && frame.flags & ACK != 0 {
                        seen.ping_acks += 1;
                        continue;
                    }
                    if frame.kind == GOAWAY {
                        goaway.store(true, Ordering::SeqCst);
                    }
                    seen.frames.push(frame);
                }
            }
        }
    })
}

/// How far a flood got.
#[derive(Debug)]
struct Flooded {
    batches: usize,
    bytes: usize,
    /// Writing failed: the proxy closed the connection.
    write_failed: bool,
}

/// Writes `batch(i)` for `i` in `0..batches`, stopping early when a write fails, when
/// `stop` is set (the reader saw a GOAWAY) or when `wait` has passed.
async fn flood(
    writer: &mut OwnedWriteHalf,
    batches: usize,
    wait: Duration,
    stop: &AtomicBool,
    pace: Option<Duration>,
    mut batch: impl FnMut(usize) -> Vec<u8>,
) -> Flooded {
    let deadline = Instant::now() + wait;
    let mut pace = pace.map(tokio::time::interval);
    let mut flooded = Flooded {
        batches: 0,
        bytes: 0,
        write_failed: false,
    };
    while flooded.batches < batches && !stop.load(Ordering::SeqCst) {
        if let Some(pace) = &mut pace {
            pace.tick().await;
        }
        let bytes = batch(flooded.batches);
        match timeout_at(deadline, writer.write_all(&bytes)).await {
            Err(_) => break,
            Ok(Err(_)) => {
                flooded.write_failed = true;
                break;
            }
            Ok(Ok(())) => {
                flooded.batches += 1;
                flooded.bytes += bytes.len();
            }
        }
    }
    flooded
}

async fn front(upstream: SocketAddr) -> Proxy {
    front_with(upstream, "60s").await
}

async fn front_with(upstream: SocketAddr, body_idle_timeout: &str) -> Proxy {
    Proxy::start(&format!(
        r#"
[[upstream]]
name = "app"
peers = ["http://{upstream}"]
response_header_timeout = "30s"

[[listener]]
address = "127.0.0.1:0"
max_header_size = {MAX_HEADER_BYTES}

[[listener.route]]
path = "/"
proxy = "app"
body_idle_timeout = "{body_idle_timeout}"
"#
    ))
    .await
}

/// A well-behaved HTTP/2 client on a new connection gets 200 for `path`, within 5 s.
async fn still_served(proxy: &Proxy, path: &str) {
    let stream = TcpStream::connect(proxy.addr()).await.expect("connect");
    let request = http::Request::get(format!("http://app.test{path}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = timeout(Duration::from_secs(5), try_http2_request(stream, request))
        .await
        .expect("a well-behaved client is answered within 5 s")
        .expect("a well-behaved client is answered");
    assert_eq!(response.status(), 200, "a well-behaved client gets 200");
}

fn paths(origin: &RecordingOrigin) -> Vec<String> {
    origin
        .requests()
        .iter()
        .map(|request| request.uri.path().to_owned())
        .collect()
}

/// CVE-2023-44487. The client opens a stream with a complete GET and resets it at once,
/// 200,000 times (17 MB) in batches of 100, without reading. The proxy must end the connection
/// with GOAWAY ENHANCE_YOUR_CALM long before the loop is done, and only a bounded number
/// of those requests may reach the upstream.
#[tokio::test]
async fn rapid_reset_is_answered_with_goaway_and_reaches_the_upstream_a_bounded_number_of_times() {
    const PAIRS: usize = 200_000;
    const PER_BATCH: usize = 100;
    let origin = RecordingOrigin::start().await;
    let proxy = front(origin.addr()).await;
    let connected = connect(proxy.addr(), &[]).await;
    let (reader, mut writer) = connected.stream.into_split();
    let goaway = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(reader, Duration::from_secs(20), goaway.clone());

    let flooded = flood(
        &mut writer,
        PAIRS / PER_BATCH,
        Duration::from_secs(15),
        &goaway,
        None,
        |batch| {
            let mut bytes = Vec::new();
            for i in 0..PER_BATCH {
                let stream = u32::try_from(1 + 2 * (batch * PER_BATCH + i)).expect("stream id");
                bytes.extend(get(stream, "/reset"));
                bytes.extend(rst_stream(stream, CANCEL));
            }
            bytes
        },
    )
    .await;
    let seen = reader.await.expect("reader");

    let goaway = seen
        .goaway()
        .unwrap_or_else(|| panic!("no GOAWAY after {flooded:?}; saw {:?}", seen.frames));
    assert_eq!(
        goaway.error_code(),
        Some(ENHANCE_YOUR_CALM),
        "GOAWAY code; {goaway:?}"
    );
    let last_stream = goaway.last_stream().expect("GOAWAY last stream id");
    let sent_pairs = flooded.batches * PER_BATCH;
    let reached = paths(&origin)
        .iter()
        .filter(|path| *path == "/reset")
        .count();
    eprintln!("rapid reset: {flooded:?}; {goaway:?}; {reached} reached the upstream");
    assert!(
        sent_pairs < PAIRS,
        "the connection was ended before the loop finished: {flooded:?}"
    );
    // The streams the proxy took up are the first few hundred at most, not thousands.
    assert!(
        last_stream < 2 * 1000,
        "the proxy processed streams up to {last_stream} before GOAWAY"
    );
    assert!(seen.closed, "the connection is closed after the GOAWAY");
    // No stream past the GOAWAY's last stream id was forwarded.
    assert!(
        reached <= (last_stream as usize).div_ceil(2),
        "{reached} reset requests reached the upstream, last stream {last_stream}"
    );
    still_served(&proxy, "/after").await;
    assert_eq!(paths(&origin).last().map(String::as_str), Some("/after"));
}

/// CVE-2024-27316 family. HEADERS without END_HEADERS, then CONTINUATION frames that never
/// end the block, up to 64 MiB in 16 KiB frames, paced. The proxy must close the connection
/// once the block is past its header limit, having read a bounded amount, and forward
/// nothing.
#[tokio::test]
async fn a_continuation_flood_is_cut_off_near_the_header_limit_and_reaches_nothing() {
    const FRAME_PAYLOAD: usize = 16 * 1024 - 16;
    const FRAMES: usize = 4096;
    let origin = RecordingOrigin::start().await;
    let proxy = front(origin.addr()).await;
    let connected = connect(proxy.addr(), &[]).await;
    let (reader, mut writer) = connected.stream.into_split();
    let goaway = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(reader, Duration::from_secs(20), goaway.clone());

    // Each CONTINUATION carries one more whole literal header field.
    let field = {
        let mut field = Vec::new();
        literal(&mut field, "x-flood", &vec![b'a'; FRAME_PAYLOAD - 12]);
        assert!(field.len() <= FRAME_PAYLOAD);
        field
    };
    let flooded = flood(
        &mut writer,
        FRAMES + 1,
        Duration::from_secs(15),
        &goaway,
        // One frame every 2 ms, so that what was written before the GOAWAY arrived is
        // what the proxy read, give or take a frame or two, rather than socket buffers.
        Some(Duration::from_millis(2)),
        |i| {
            if i == 0 {
                frame(HEADERS, END_STREAM, 1, &request_block("/flood", &[]))
            } else {
                frame(CONTINUATION, 0, 1, &field)
            }
        },
    )
    .await;
    let seen = reader.await.expect("reader");

    assert!(
        seen.closed,
        "the proxy closed the connection (flood: {flooded:?}, saw {:?})",
        seen.frames
    );
    let goaway = seen
        .goaway()
        .unwrap_or_else(|| panic!("no GOAWAY (flood: {flooded:?}, saw {:?})", seen.frames));
    assert!(
        matches!(
            goaway.error_code(),
            Some(ENHANCE_YOUR_CALM | COMPRESSION_ERROR)
        ),
        "GOAWAY code: {goaway:?}"
    );
    // What the proxy took before it gave up is at most what was written before the GOAWAY
    // arrived. h2 allows a header block of max_header_size in frames of 16 KiB, at least
    // five CONTINUATIONs: here 6 frames, about 96 KiB. Allow for a slow machine, but not
    // for megabytes.
    assert!(
        flooded.bytes <= 32 * 16 * 1024,
        "{} bytes in {} frames were written before the proxy gave up",
        flooded.bytes,
        flooded.batches
    );
    assert!(paths(&origin).is_empty(), "nothing reached the upstream");
    eprintln!("CONTINUATION flood: {flooded:?}; {goaway:?}");
    still_served(&proxy, "/after").await;
}

/// The proxy advertises its concurrent stream limit and refuses the streams beyond it while
/// the streams within it complete.
#[tokio::test]
async fn streams_beyond_the_advertised_concurrency_limit_are_refused_and_the_rest_complete() {
    let origin = GatedOrigin::start().await;
    let proxy = front(origin.addr).await;
    let mut connected = connect(proxy.addr(), &[]).await;
    let advertised = connected
        .server_settings
        .iter()
        .find(|(id, _)| *id == SETTINGS_MAX_CONCURRENT_STREAMS)
        .map(|(_, value)| *value);
    assert_eq!(advertised, Some(MAX_CONCURRENT_STREAMS));
    let limit = MAX_CONCURRENT_STREAMS as usize;

    // The first `limit` streams reach the upstream and wait there.
    let mut bytes = Vec::new();
    for i in 0..limit {
        bytes.extend(get(stream_id(i), &format!("/held/{i}")));
    }
    connected.stream.write_all(&bytes).await.expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin.arrived.load(Ordering::SeqCst) < limit {
        assert!(
            Instant::now() < deadline,
            "only {} of {limit} requests reached the upstream",
            origin.arrived.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Ten more are over the limit.
    let mut bytes = Vec::new();
    for i in limit..limit + 10 {
        bytes.extend(get(stream_id(i), &format!("/over/{i}")));
    }
    connected.stream.write_all(&bytes).await.expect("write");
    let (reader, _writer) = connected.stream.into_split();
    let mut reader = reader;
    let mut refused = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while refused.len() < 10 {
        let frame = timeout_at(deadline, read_frame(&mut reader))
            .await
            .unwrap_or_else(|_| panic!("only {} refusals within 5 s", refused.len()))
            .expect("read");
        if frame.kind == RST_STREAM {
            refused.push((frame.stream, frame.error_code()));
        }
        assert_ne!(frame.kind, GOAWAY, "the connection stays up: {frame:?}");
    }
    let over: Vec<u32> = (limit..limit + 10).map(stream_id).collect();
    for (stream, code) in &refused {
        assert!(over.contains(stream), "stream {stream} was refused");
        assert!(
            matches!(code, Some(REFUSED_STREAM | PROTOCOL_ERROR)),
            "stream {stream} reset with {code:?}"
        );
    }
    assert_eq!(origin.arrived.load(Ordering::SeqCst), limit);

    // Released, the first `limit` streams complete with 200.
    origin.release();
    let mut ok = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok.len() < limit {
        let frame = timeout_at(deadline, read_frame(&mut reader))
            .await
            .unwrap_or_else(|_| panic!("only {} of {limit} answers within 10 s", ok.len()))
            .expect("read");
        if frame.kind == HEADERS {
            assert_eq!(frame.status(), Some(200), "stream {}", frame.stream);
            ok.insert(frame.stream);
        }
        assert_ne!(frame.kind, GOAWAY, "the connection stays up: {frame:?}");
    }
    assert_eq!(ok, (0..limit).map(stream_id).collect());
    assert_eq!(origin.arrived.load(Ordering::SeqCst), limit);
}

fn stream_id(i: usize) -> u32 {
    u32::try_from(1 + 2 * i).expect("stream id")
}

/// Header lists over `max_header_size`, sent plainly and as an HPACK amplification (one
/// 4,000-byte field in the dynamic table, then referenced 400 times by its one-byte index),
/// get 431 or GOAWAY ENHANCE_YOUR_CALM and never reach the upstream.
#[tokio::test]
async fn header_lists_over_the_limit_never_reach_the_upstream() {
    let origin = RecordingOrigin::start().await;
    let proxy = front(origin.addr()).await;
    let advertised = connect(proxy.addr(), &[]).await.server_settings;
    assert!(
        advertised.contains(&(SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BYTES as u32)),
        "SETTINGS_MAX_HEADER_LIST_SIZE is max_header_size: {advertised:?}"
    );

    let big = vec![b'b'; 4 * 1024];
    let plain = request_block("/plain", &[("x-a", &big), ("x-b", &big), ("x-c", &big)]);
    assert!(plain.len() > MAX_HEADER_BYTES);
    let mut amplified = request_block("/amplified", &[]);
    // 32 + 5 + 4000 bytes fits the default 4,096-byte dynamic table (RFC 7541 §4.1).
    literal_indexed(&mut amplified, "x-big", &big[..4000]);
    // 400 one-byte references decode to 1.6 MiB of header fields.
    amplified.extend(std::iter::repeat_n(0x80 | 62, 400));
    assert!(amplified.len() < MAX_HEADER_BYTES);

    for (name, block) in [("plain", plain), ("amplified", amplified)] {
        let connected = connect(proxy.addr(), &[]).await;
        let (reader, mut writer) = connected.stream.into_split();
        let reader = spawn_reader(reader, Duration::from_secs(3), Arc::default());
        // In frames of at most 16 KiB, as the default SETTINGS_MAX_FRAME_SIZE demands.
        let mut pieces = block.chunks(16 * 1024).peekable();
        let mut first = true;
        while let Some(piece) = pieces.next() {
            let last = pieces.peek().is_none();
            let flags = if last { END_HEADERS } else { 0 };
            let bytes = if first {
                frame(HEADERS, flags | END_STREAM, 1, piece)
            } else {
                frame(CONTINUATION, flags, 1, piece)
            };
            first = false;
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let seen = reader.await.expect("reader");
        let status = seen.frames.iter().find_map(Frame::status);
        let reset = seen
            .resets()
            .find(|frame| frame.stream == 1)
            .and_then(Frame::error_code);
        let goaway = seen.goaway().and_then(Frame::error_code);
        eprintln!("{name}: status {status:?}, reset {reset:?}, GOAWAY {goaway:?}");
        assert_ne!(status, Some(200), "{name}: answered 200");
        match name {
            // h2 answers a header list over the limit with 431 on the stream.
            "plain" => assert_eq!(status, Some(431), "{name}: {:?}", seen.frames),
            // Decoding far past the limit is abuse: the connection goes (a decoding error,
            // PROTOCOL_ERROR, would mean the block was not the amplification meant here).
            _ => assert!(
                status == Some(431) || goaway == Some(ENHANCE_YOUR_CALM),
                "{name}: {:?}",
                seen.frames
            ),
        }
    }
    assert!(
        paths(&origin).is_empty(),
        "nothing reached the upstream: {:?}",
        paths(&origin)
    );
    still_served(&proxy, "/after").await;
}

/// Malformed requests (RFC 9113 §8.1.1, §8.2.1, §8.2.2, §8.3): a missing or repeated
/// pseudo-header, one after a regular field, an unknown one, connection-specific fields,
/// an upper-case name, `te` other than `trailers`, and `:path` values that are no path.
/// Each is refused on its own stream (a reset, or a 4xx) or with the connection, and never
/// reaches the upstream; a good request on the same connection after a stream-level refusal
/// is still answered.
#[tokio::test]
async fn malformed_pseudo_headers_and_connection_fields_never_reach_the_upstream() {
    let origin = RecordingOrigin::start().await;
    let proxy = front(origin.addr()).await;
    let fields = |pairs: &[(&str, &[u8])]| {
        let mut block = Vec::new();
        for (name, value) in pairs {
            literal(&mut block, name, value);
        }
        block
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "no :path",
            fields(&[
                (":method", b"GET"),
                (":scheme", b"http"),
                (":authority", b"app.test"),
            ]),
        ),
        ("two :path", request_block("/bad", &[(":path", b"/bad2")])),
        (
            "a pseudo-header after a regular field",
            fields(&[
                (":method", b"GET"),
                (":scheme", b"http"),
                (":authority", b"app.test"),
                ("x-a", b"1"),
                (":path", b"/bad"),
            ]),
        ),
        (
            "an unknown pseudo-header",
            request_block("/bad", &[(":foo", b"bar")]),
        ),
        (
            "connection",
            request_block("/bad", &[("connection", b"keep-alive")]),
        ),
        (
            "transfer-encoding",
            request_block("/bad", &[("transfer-encoding", b"chunked")]),
        ),
        (
            "keep-alive",
            request_block("/bad", &[("keep-alive", b"timeout=5")]),
        ),
        (
            "an upper-case name",
            request_block("/bad", &[("X-Upper", b"1")]),
        ),
        ("te: gzip", request_block("/bad", &[("te", b"gzip")])),
        ("a relative :path", request_block("bad", &[])),
        ("an empty :path", request_block("", &[])),
        ("a :path with a space", request_block("/bad path", &[])),
    ];
    for (name, block) in cases {
        let connected = connect(proxy.addr(), &[]).await;
        let (reader, mut writer) = connected.stream.into_split();
        let reader = spawn_reader(reader, Duration::from_secs(1), Arc::default());
        let mut bytes = frame(HEADERS, END_HEADERS | END_STREAM, 1, &block);
        bytes.extend(get(3, "/ok"));
        // The proxy may close the connection at once; what it answered is what counts.
        let _ = writer.write_all(&bytes).await;
        let seen = reader.await.expect("reader");
        let on = |stream: u32| {
            seen.frames
                .iter()
                .filter(move |frame| frame.stream == stream)
        };
        let status = on(1).find_map(Frame::status);
        let reset = on(1).find(|frame| frame.kind == RST_STREAM);
        let goaway = seen.goaway();
        eprintln!(
            "{name}: status {status:?}, reset {:?}, GOAWAY {:?}",
            reset.and_then(Frame::error_code),
            goaway.and_then(Frame::error_code)
        );
        assert!(
            reset.is_some()
                || goaway.is_some()
                || status.is_some_and(|code| (400..500).contains(&code)),
            "{name}: refused neither on the stream nor with the connection: {:?}",
            seen.frames
        );
        if goaway.is_none() {
            assert_eq!(
                on(3).find_map(Frame::status),
                Some(200),
                "{name}: the next request on the connection: {:?}",
                seen.frames
            );
        }
    }
    let reached = paths(&origin);
    assert!(
        reached.iter().all(|path| path == "/ok"),
        "a malformed request reached the upstream: {reached:?}"
    );
    still_served(&proxy, "/after").await;
}

type MakeFrame = dyn Fn(usize) -> Vec<u8>;

/// 100,000 PINGs, then 20,000 SETTINGS frames, from clients that read nothing. The proxy
/// must not queue answers without bound: it either stops reading (TCP pushes back, the
/// flood stalls) or closes the connection. Either way, once the client reads again the
/// connection has either ended or still answers a request, and other clients are served.
#[tokio::test]
async fn ping_and_settings_floods_neither_grow_without_bound_nor_stop_the_proxy() {
    let origin = RecordingOrigin::start().await;
    let proxy = front(origin.addr()).await;

    let ping = |i: usize| frame(PING, 0, 0, &(i as u64).to_be_bytes());
    let settings = |_| settings_frame(&[(SETTINGS_ENABLE_PUSH, 0)]);
    let floods: [(&str, usize, &MakeFrame); 2] =
        [("PING", 100_000, &ping), ("SETTINGS", 20_000, &settings)];
    for (name, count, make) in floods {
        let connected = connect(proxy.addr(), &[]).await;
        let (mut reader, mut writer) = connected.stream.into_split();
        let stop = AtomicBool::new(false);
        // 100 frames per write; the proxy's answers pile up unread meanwhile.
        let flooded = flood(
            &mut writer,
            count / 100,
            Duration::from_secs(10),
            &stop,
            None,
            |b| (0..100).flat_map(|i| make(b * 100 + i)).collect(),
        )
        .await;
        let started = Instant::now();
        // Now a request on the same connection, and read: either the connection has ended
        // or the request is answered within 10 s.
        let asked = writer.write_all(&get(1, &format!("/{name}"))).await;
        let mut answered = false;
        let mut acks = 0usize;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut closed = asked.is_err();
        while !closed && !answered {
            match timeout_at(deadline, read_frame(&mut reader)).await {
                Err(_) => panic!(
                    "{name}: neither answered nor closed within 10 s (flood: {flooded:?}, {acks} acks)"
                ),
                Ok(Err(_)) => closed = true,
                Ok(Ok(frame)) => {
                    if frame.kind == PING || frame.kind == SETTINGS {
                        acks += 1;
                    }
                    if frame.kind == GOAWAY {
                        closed = true;
                    }
                    if frame.kind == HEADERS && frame.stream == 1 {
                        assert_eq!(frame.status(), Some(200), "{name}: {frame:?}");
                        answered = true;
                    }
                }
            }
        }
        // Every answer corresponds to a frame sent: nothing was invented or duplicated, and
        // the backlog was worked off (or dropped with the connection) in bounded time.
        assert!(
            acks <= flooded.batches * 100 + 1,
            "{name}: {acks} answers to {} frames",
            flooded.batches * 100
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        eprintln!(
            "{name} flood: {flooded:?}; then {acks} acks, answered {answered}, closed {closed}"
        );
        still_served(&proxy, &format!("/after-{name}")).await;
    }
}

/// A client that opens no flow-control window (SETTINGS_INITIAL_WINDOW_SIZE 0) asks for a
/// 256 MiB download and then only answers PINGs. The proxy must not buffer the download
/// (the upstream can write only what socket buffers and one frame hold), and must reset the
/// stream once no byte has moved for the route's `body_idle_timeout` (1 s here), freeing
/// the upstream connection, instead of holding both forever.
#[tokio::test]
async fn a_download_to_a_client_that_opens_no_window_is_bounded_and_reset_after_the_idle_timeout() {
    const BODY: u64 = 256 * 1024 * 1024;
    let origin = DownloadOrigin::start(BODY).await;
    let proxy = front_with(origin.addr, "1s").await;
    let mut connected = connect(proxy.addr(), &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    connected
        .stream
        .write_all(&get(1, "/download"))
        .await
        .expect("write");
    let started = Instant::now();
    let mut status = None;
    let mut reset = None;
    let mut data = 0usize;
    while reset.is_none() {
        let received =
            match timeout(Duration::from_secs(15), read_frame(&mut connected.stream)).await {
                Err(_) => panic!(
                    "the stalled stream is still open after {:?}; the upstream wrote {} bytes",
                    started.elapsed(),
                    origin.written.load(Ordering::SeqCst)
                ),
                Ok(Err(error)) => panic!("the connection ended without a reset: {error}"),
                Ok(Ok(received)) => received,
            };
        match received.kind {
            PING if received.flags & ACK == 0 => {
                let ack = frame(PING, ACK, 0, &received.payload);
                connected.stream.write_all(&ack).await.expect("PING ack");
            }
            HEADERS if received.stream == 1 => status = received.status(),
            DATA => data += received.payload.len(),
            RST_STREAM if received.stream == 1 => reset = received.error_code(),
            GOAWAY => panic!("GOAWAY instead of a stream reset: {received:?}"),
            _ => {}
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(status, Some(200));
    assert_eq!(data, 0, "no DATA without a window");
    assert_eq!(reset, Some(CANCEL), "the stream is cancelled");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(10),
        "reset after {elapsed:?}"
    );
    // The upstream connection is closed with the stream: its writes fail soon after.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !origin.ended.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the upstream connection is still open 5 s after the reset"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = origin.written.load(Ordering::SeqCst);
    assert!(
        written < 32 * 1024 * 1024,
        "the upstream wrote {written} bytes into a stream with no window"
    );
    eprintln!("stalled download: reset after {elapsed:?}; the upstream wrote {written} bytes");
    // The stream was reset, not the connection: it still answers a PING.
    let ping = frame(PING, 0, 0, b"stillup!");
    connected.stream.write_all(&ping).await.expect("PING");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let received = timeout_at(deadline, read_frame(&mut connected.stream))
            .await
            .expect("a PING ack within 5 s")
            .expect("the connection is still open");
        if received.kind == PING && received.flags & ACK != 0 && received.payload == b"stillup!" {
            break;
        }
    }
}

/// A client that opens every window but stops reading its socket: the proxy's writes
/// block, h2's send buffer fills, and the stream must be reset after the route's
/// `body_idle_timeout` (1 s here) with the upstream connection closed, the upstream having
/// written only what buffers hold.
#[tokio::test]
async fn a_download_to_a_client_that_stops_reading_its_socket_frees_the_upstream_after_the_idle_timeout()
 {
    const BODY: u64 = 1024 * 1024 * 1024;
    let origin = DownloadOrigin::start(BODY).await;
    let proxy = front_with(origin.addr, "1s").await;
    let mut connected = connect(proxy.addr(), &[(SETTINGS_INITIAL_WINDOW_SIZE, 0x7fff_ffff)]).await;
    let mut request = frame(WINDOW_UPDATE, 0, 0, &0x7fff_0000u32.to_be_bytes());
    request.extend(get(1, "/download"));
    connected.stream.write_all(&request).await.expect("write");
    origin.ends_after_the_timeout_bounded().await;
    drop(connected);
}

/// The same client over HTTP/1.1: hyper stops polling the response body while its socket
/// is full, so the body's idle timer never runs; the listener's `send_timeout` (1 s here)
/// ends the connection and the upstream connection with it.
#[tokio::test]
async fn an_http1_download_to_a_client_that_stops_reading_frees_the_upstream_after_the_send_timeout()
 {
    const BODY: u64 = 1024 * 1024 * 1024;
    let origin = DownloadOrigin::start(BODY).await;
    let proxy = Proxy::start(&http1_front(origin.addr, "1s")).await;
    let mut stream = TcpStream::connect(proxy.addr()).await.expect("connect");
    stream
        .write_all(b"GET /download HTTP/1.1\r\nhost: app.test\r\n\r\n")
        .await
        .expect("write");
    origin.ends_after_the_timeout_bounded().await;
    // The client's connection is closed too, once the buffered bytes are read.
    let mut sink = vec![0u8; 1 << 20];
    let mut received = 0usize;
    loop {
        match timeout(Duration::from_secs(10), stream.read(&mut sink)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(read)) => received += read,
            Err(_) => panic!("the connection is still open after {received} bytes"),
        }
    }
    assert!(
        (received as u64) < BODY,
        "the whole body arrived; nothing was cut"
    );
}

/// A slow HTTP/1.1 reader that keeps taking data is never cut by the send timeout.
#[tokio::test]
async fn an_http1_client_reading_slowly_is_not_cut_by_the_send_timeout() {
    const SIZE: u64 = 4 * 1024 * 1024;
    let origin = StreamingOrigin::start().await;
    let proxy = Proxy::start(&http1_front(origin.addr(), "1s")).await;
    let mut stream = TcpStream::connect(proxy.addr()).await.expect("connect");
    let request = format!(
        "GET /download?bytes={SIZE}&seed=5 HTTP/1.1\r\nhost: app.test\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut received = Vec::new();
    let mut piece = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "not done within 60 s");
        let read = stream.read(&mut piece).await.expect("read");
        if read == 0 {
            break;
        }
        received.extend_from_slice(&piece[..read]);
        // Less than the send timeout between reads.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let text = String::from_utf8_lossy(&received[..received.len().min(512)]).into_owned();
    let head_end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a response head");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        (received.len() - head_end - 4) as u64,
        SIZE,
        "the whole body"
    );
}

/// A plain HTTP/1.1 front for `upstream` with the listener's `send_timeout`.
fn http1_front(upstream: SocketAddr, send_timeout: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "app"
peers = ["http://{upstream}"]

[[listener]]
address = "127.0.0.1:0"
send_timeout = "{send_timeout}"

[[listener.route]]
path = "/"
proxy = "app"
"#
    )
}

/// The stall guard cuts only streams that take nothing: a client that reads a 32 MiB
/// download over HTTP/2 at its own pace, with the route's idle timeout at 1 s, gets it whole.
#[tokio::test]
async fn an_http2_download_that_the_client_reads_passes_intact_under_the_stall_guard() {
    use http_body_util::BodyExt;
    use sha2::{Digest, Sha256};

    const SIZE: u64 = 32 * 1024 * 1024;
    let origin = StreamingOrigin::start().await;
    let proxy = front_with(origin.addr(), "1s").await;
    let stream = TcpStream::connect(proxy.addr()).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let request = http::Request::get(format!("http://app.test/download?bytes={SIZE}&seed=3"))
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut digest = Sha256::new();
    let mut received = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Some(frame) = timeout_at(deadline, body.frame())
        .await
        .expect("the download ends within 120 s")
    {
        let frame = frame.unwrap_or_else(|error| panic!("cut after {received} bytes: {error}"));
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            digest.update(&data);
        }
    }
    assert_eq!(received, SIZE);
    let hex: String = digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(hex, expected_download_sha256(SIZE, 3));
}

/// An HTTP/1.1 origin that holds every request until [`release`](Self::release), then
/// answers 200; it counts the requests that arrived.
struct GatedOrigin {
    addr: SocketAddr,
    arrived: Arc<AtomicUsize>,
    gate: watch::Sender<bool>,
    _task: Aborting,
}

struct Aborting(JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl GatedOrigin {
    async fn start() -> GatedOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let arrived = Arc::new(AtomicUsize::new(0));
        let (gate, opened) = watch::channel(false);
        let task = {
            let arrived = arrived.clone();
            tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let arrived = arrived.clone();
                    let opened = opened.clone();
                    let service = service_fn(move |_request| {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        let mut opened = opened.clone();
                        async move {
                            let _ = opened.wait_for(|open| *open).await;
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    });
                    connections.spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service),
                    );
                }
            })
        };
        GatedOrigin {
            addr,
            arrived,
            gate,
            _task: Aborting(task),
        }
    }

    fn release(&self) {
        let _ = self.gate.send(true);
    }
}

/// A raw HTTP/1.1 origin that answers every request with `size` bytes and counts what it
/// managed to write; `ended` is set when a write fails (the proxy closed the connection).
struct DownloadOrigin {
    addr: SocketAddr,
    written: Arc<AtomicU64>,
    ended: Arc<AtomicBool>,
    _task: Aborting,
}

impl DownloadOrigin {
    /// Waits (up to 15 s) for the proxy to close the upstream connection of a client that
    /// reads nothing, and requires that it took about the 1 s timeout and that the upstream
    /// wrote only what buffers hold.
    async fn ends_after_the_timeout_bounded(&self) {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(15);
        while !self.ended.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the upstream connection is still open after 15 s; it wrote {} bytes",
                self.written.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        let written = self.written.load(Ordering::SeqCst);
        eprintln!(
            "unread download: upstream closed after {elapsed:?}, having written {written} bytes"
        );
        assert!(
            elapsed >= Duration::from_millis(900),
            "closed after {elapsed:?}"
        );
        assert!(
            written < 64 * 1024 * 1024,
            "the upstream wrote {written} bytes to a client that reads nothing"
        );
    }

    async fn start(size: u64) -> DownloadOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let written = Arc::new(AtomicU64::new(0));
        let ended = Arc::new(AtomicBool::new(false));
        let task = {
            let (written, ended) = (written.clone(), ended.clone());
            tokio::spawn(async move {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                // The request head.
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n");
                if stream.write_all(response.as_bytes()).await.is_err() {
                    ended.store(true, Ordering::SeqCst);
                    return;
                }
                let chunk = vec![b'd'; 16 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    match stream.write(&chunk[..n]).await {
                        Ok(0) | Err(_) => {
                            ended.store(true, Ordering::SeqCst);
                            return;
                        }
                        Ok(n) => {
                            written.fetch_add(n as u64, Ordering::SeqCst);
                            left -= n as u64;
                        }
                    }
                }
            })
        };
        DownloadOrigin {
            addr,
            written,
            ended,
            _task: Aborting(task),
        }
    }
}

#[test]
fn the_frame_helpers_encode_and_decode_as_the_rfcs_say() {
    // RFC 7541 C.1: 1337 with a 5-bit prefix.
    let mut out = Vec::new();
    hpack_int(&mut out, 5, 0, 1337);
    assert_eq!(out, [31, 154, 10]);
    // "431" Huffman-coded: 011010 011001 00001, padded with ones.
    assert_eq!(huffman_digits(&[0x69, 0x90, 0xff]).as_deref(), Some("431"));
    let headers = |payload: Vec<u8>| Frame {
        kind: HEADERS,
        flags: END_HEADERS,
        stream: 1,
        payload,
    };
    assert_eq!(
        headers(vec![0x48, 0x83, 0x69, 0x90, 0xff]).status(),
        Some(431)
    );
    assert_eq!(
        headers(vec![0x08, 0x03, b'4', b'3', b'1']).status(),
        Some(431)
    );
    assert_eq!(headers(vec![0x88]).status(), Some(200));
    assert_eq!(
        frame(PING, ACK, 0, &[0; 8])[..9],
        [0, 0, 8, PING, ACK, 0, 0, 0, 0]
    );
}

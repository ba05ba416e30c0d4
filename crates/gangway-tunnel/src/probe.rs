//! The WebSocket client: a step-by-step connection with timings, used by the probe and by
//! the TCP-to-WebSocket bridge.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How to reach a WebSocket server: trust, client identity, the message to echo, the
/// time allowed per step.
#[derive(Clone)]
pub struct ProbeOptions {
    /// PEM certificates to trust for `wss://` (required unless `insecure`; the system
    /// store is not read).
    pub ca: Option<String>,
    /// A client certificate to present: (certificate chain PEM, private key PEM).
    pub client_cert: Option<(String, String)>,
    /// The text message sent by [`probe`], which expects it back. Unused by the bridge.
    pub message: String,
    /// The time allowed for each step (DNS, TCP, TLS, handshake, echo). Default 10 s.
    pub timeout: Duration,
    /// Accept any server certificate. For diagnosis only.
    pub insecure: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            ca: None,
            client_cert: None,
            message: "gangway probe".to_owned(),
            timeout: Duration::from_secs(10),
            insecure: false,
        }
    }
}

impl ProbeOptions {
    /// The defaults, with the trusted CAs and the client certificate read from PEM files.
    /// A file that cannot be read is an error naming it.
    pub fn from_files(
        ca: Option<&std::path::Path>,
        client_cert: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<Self, String> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))
        };
        Ok(Self {
            ca: ca.map(read).transpose()?,
            client_cert: match client_cert {
                Some((chain, key)) => Some((read(chain)?, read(key)?)),
                None => None,
            },
            ..Self::default()
        })
    }
}

impl fmt::Debug for ProbeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeOptions")
            .field("ca", &self.ca.as_ref().map(|_| "<pem>"))
            .field(
                "client_cert",
                &self.client_cert.as_ref().map(|_| "<pem, redacted key>"),
            )
            .field("message", &self.message)
            .field("timeout", &self.timeout)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// The steps of a WebSocket connection, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    /// Reading the URL.
    Url,
    /// Resolving the host name.
    Dns,
    /// Connecting over TCP.
    Tcp,
    /// The TLS handshake (`wss://` only).
    Tls,
    /// The HTTP upgrade and the WebSocket handshake.
    Handshake,
    /// Sending the message and reading the echo.
    Echo,
}

impl fmt::Display for ProbeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Url => "url",
            Self::Dns => "dns",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Handshake => "handshake",
            Self::Echo => "echo",
        })
    }
}

/// Why a WebSocket connection (a probe, or a bridge's outgoing leg) failed, by step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The URL is not `ws://` or `wss://` with a host.
    #[error("URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The host name did not resolve.
    #[error("DNS lookup of {host} failed")]
    Dns {
        /// The host looked up.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// No resolved address accepted a TCP connection.
    #[error("TCP connection to {addr} failed")]
    Tcp {
        /// The last address tried.
        addr: SocketAddr,
        /// The connect error.
        #[source]
        source: io::Error,
    },
    /// The TLS configuration or handshake failed (an unknown CA, a name mismatch, a
    /// refused client certificate, unreadable PEM).
    #[error("TLS with {server_name} failed")]
    Tls {
        /// The name the certificate was checked against.
        server_name: String,
        /// The cause, usually a `rustls::Error`.
        #[source]
        source: BoxError,
    },
    /// The server answered the upgrade with this status instead of 101.
    #[error("upgrade answered with HTTP status {0}")]
    HttpStatus(u16),
    /// The WebSocket handshake failed otherwise (a bad `Sec-WebSocket-Accept`, a
    /// connection closed mid-handshake).
    #[error("WebSocket handshake failed")]
    Handshake {
        /// The cause, usually a `tungstenite::Error`.
        #[source]
        source: BoxError,
    },
    /// The message did not come back as sent.
    #[error("echo failed: {reason}")]
    Echo {
        /// What came instead.
        reason: String,
    },
    /// A step took longer than [`ProbeOptions::timeout`].
    #[error("{step} step timed out")]
    Timeout {
        /// The step that timed out.
        step: ProbeStep,
    },
}

impl ProbeError {
    /// The step that failed.
    pub fn step(&self) -> ProbeStep {
        match self {
            Self::Url { .. } => ProbeStep::Url,
            Self::Dns { .. } => ProbeStep::Dns,
            Self::Tcp { .. } => ProbeStep::Tcp,
            Self::Tls { .. } => ProbeStep::Tls,
            Self::HttpStatus(_) | Self::Handshake { .. } => ProbeStep::Handshake,
            Self::Echo { .. } => ProbeStep::Echo,
            Self::Timeout { step } => *step,
        }
    }
}

/// How long each step took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeTimings {
    /// Resolving the host.
    pub dns: Duration,
    /// The TCP connect.
    pub tcp: Duration,
    /// The TLS handshake; `None` for `ws://`.
    pub tls: Option<Duration>,
    /// The HTTP upgrade and WebSocket handshake.
    pub handshake: Duration,
    /// From sending the message to reading its echo.
    pub echo: Duration,
}

/// A successful probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The URL probed.
    pub url: String,
    /// The address connected to.
    pub peer: SocketAddr,
    /// Per-step timings.
    pub timings: ProbeTimings,
    /// The message sent.
    pub sent: String,
    /// The message received back.
    pub response: String,
    /// The code of the server's answer to our close, if it sent one.
    pub close_code: Option<u16>,
}

impl ProbeReport {
    /// The report as four lines for a terminal:
    ///
    /// ```text
    /// CONNECTED ws://127.0.0.1:8080/echo (127.0.0.1:8080): dns 0.1 ms, tcp 0.2 ms, handshake 1.0 ms
    /// SENT 13 bytes: "gangway probe"
    /// RESPONSE 13 bytes in 0.3 ms: "gangway probe"
    /// DISCONNECTED close code 1000
    /// ```
    pub fn lines(&self) -> Vec<String> {
        let ms = |duration: Duration| format!("{:.1} ms", duration.as_secs_f64() * 1000.0);
        let t = &self.timings;
        let mut steps = vec![format!("dns {}", ms(t.dns)), format!("tcp {}", ms(t.tcp))];
        if let Some(tls) = t.tls {
            steps.push(format!("tls {}", ms(tls)));
        }
        steps.push(format!("handshake {}", ms(t.handshake)));
        let close = match self.close_code {
            Some(code) => format!("close code {code}"),
            None => "no close code".to_owned(),
        };
        vec![
            format!(
                "CONNECTED {} ({}): {}",
                self.url,
                self.peer,
                steps.join(", ")
            ),
            format!("SENT {} bytes: {:?}", self.sent.len(), self.sent),
            format!(
                "RESPONSE {} bytes in {}: {:?}",
                self.response.len(),
                ms(t.echo),
                self.response
            ),
            format!("DISCONNECTED {close}"),
        ]
    }
}

/// A TCP connection, with or without TLS.
#[derive(Debug)]
pub(crate) enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

pub(crate) type ClientWs = WebSocketStream<MaybeTls>;

async fn step<T, F>(
    step: ProbeStep,
    timeout: Duration,
    future: F,
) -> Result<(T, Duration), ProbeError>
where
    F: Future<Output = Result<T, ProbeError>>,
{
    let start = Instant::now();
    match tokio::time::timeout(timeout, future).await {
        Ok(Ok(value)) => Ok((value, start.elapsed())),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ProbeError::Timeout { step }),
    }
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
}

fn parse_url(url: &str) -> Result<Target, ProbeError> {
    let bad = |reason| ProbeError::Url {
        url: url.to_owned(),
        reason,
    };
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(bad("the scheme must be ws or wss")),
    };
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Target { tls, host, port })
}

/// Connects step by step: DNS, TCP (each resolved address in turn), TLS for `wss://`,
/// then the WebSocket handshake.
pub(crate) async fn connect(
    url: &str,
    options: &ProbeOptions,
) -> Result<(ClientWs, SocketAddr, ProbeTimings), ProbeError> {
    let target = parse_url(url)?;
    let mut timings = ProbeTimings::default();
    let (addrs, took) = step(ProbeStep::Dns, options.timeout, async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|source| ProbeError::Dns {
                host: target.host.clone(),
                source,
            })?
            .collect();
        Ok(addrs)
    })
    .await?;
    timings.dns = took;
    let ((tcp, peer), took) = step(ProbeStep::Tcp, options.timeout, async {
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => return Ok((tcp, *addr)),
                Err(source) => last = Some((*addr, source)),
            }
        }
        let (addr, source) = last.unwrap_or_else(|| {
            let nothing = io::Error::new(io::ErrorKind::NotFound, "no address resolved");
            (SocketAddr::from(([0, 0, 0, 0], target.port)), nothing)
        });
        Err(ProbeError::Tcp { addr, source })
    })
    .await?;
    timings.tcp = took;
    let _ = tcp.set_nodelay(true);
    let stream = if target.tls {
        let tls_error = |source: BoxError| ProbeError::Tls {
            server_name: target.host.clone(),
            source,
        };
        let config = client_config(options).map_err(tls_error)?;
        let name = ServerName::try_from(target.host.clone()).map_err(|e| tls_error(Box::new(e)))?;
        let connector = TlsConnector::from(Arc::new(config));
        let (tls, took) = step(ProbeStep::Tls, options.timeout, async {
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| tls_error(Box::new(e)))
        })
        .await?;
        timings.tls = Some(took);
        MaybeTls::Tls(Box::new(tls))
    } else {
        MaybeTls::Plain(tcp)
    };
    let (ws, took) = step(ProbeStep::Handshake, options.timeout, async {
        match tokio_tungstenite::client_async(url, stream).await {
            Ok((ws, _response)) => Ok(ws),
            Err(tungstenite::Error::Http(response)) => {
                Err(ProbeError::HttpStatus(response.status().as_u16()))
            }
            Err(source) => Err(ProbeError::Handshake {
                source: Box::new(source),
            }),
        }
    })
    .await?;
    timings.handshake = took;
    Ok((ws, peer, timings))
}

fn client_config(options: &ProbeOptions) -> Result<ClientConfig, BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        let pem = options
            .ca
            .as_deref()
            .ok_or("wss:// needs a CA certificate (or insecure)")?;
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(certificate?)?;
        }
        if roots.is_empty() {
            return Err("the CA PEM holds no certificate".into());
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &options.client_cert {
        Some((chain, key)) => {
            let chain =
                CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// `insecure`: any certificate is accepted, but the handshake signatures are still checked
/// (so the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Checks a WebSocket endpoint step by step: DNS, TCP, TLS (`wss://`), the HTTP upgrade
/// and WebSocket handshake, then sends [`ProbeOptions::message`] as a text message,
/// expects it back (as text or binary), and closes with 1000. Each step is bounded by
/// [`ProbeOptions::timeout`]; an error names the step that failed.
pub async fn probe(url: &str, options: &ProbeOptions) -> Result<ProbeReport, ProbeError> {
    let (mut ws, peer, mut timings) = connect(url, options).await?;
    let echo_error = |reason: String| ProbeError::Echo { reason };
    let (response, took) = step(ProbeStep::Echo, options.timeout, async {
        ws.send(Message::text(options.message.clone()))
            .await
            .map_err(|e| echo_error(format!("send failed: {e}")))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
                Some(Ok(Message::Binary(bytes))) => {
                    return Ok(String::from_utf8_lossy(&bytes).into_owned());
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|frame| u16::from(frame.code));
                    return Err(echo_error(format!("closed by the server ({code:?})")));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(echo_error(format!("read failed: {e}"))),
                None => return Err(echo_error("connection ended".to_owned())),
            }
        }
    })
    .await?;
    timings.echo = took;
    if response != options.message {
        return Err(echo_error(format!("got {response:?} back")));
    }
    let close_code = tokio::time::timeout(options.timeout, async {
        let normal = tungstenite::protocol::CloseFrame {
            code: tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "".into(),
        };
        let _ = ws.close(Some(normal)).await;
        let mut code = None;
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                code = frame.map(|frame| u16::from(frame.code));
            }
        }
        code
    })
    .await
    .unwrap_or(None);
    Ok(ProbeReport {
        url: url.to_owned(),
        peer,
        timings,
        sent: options.message.clone(),
        response,
        close_code,
    })
}

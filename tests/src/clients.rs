//! Clients for driving the proxy: TLS set-up, one-shot HTTP requests and raw bytes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A rustls client config (ring provider, safe default protocol versions) that trusts
/// only the certificates in `ca_pem` and offers `alpn` (for example `&[b"h2", b"http/1.1"]`;
/// empty offers no ALPN).
///
/// # Panics
///
/// When `ca_pem` holds no certificate or one rustls cannot use as a trust anchor.
pub fn tls_client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.expect("the CA PEM does not parse");
        roots
            .add(cert)
            .expect("the CA certificate is not a usable trust anchor");
    }
    assert!(!roots.is_empty(), "the CA PEM holds no certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

/// Like [`tls_client_config`], presenting `client` (chain and key) when the server asks for
/// a certificate.
pub fn tls_client_config_with_certificate(
    ca_pem: &str,
    alpn: &[&[u8]],
    client: &crate::certs::Issued,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.expect("the CA PEM does not parse"))
            .expect("the CA certificate is not a usable trust anchor");
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(client.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("the client chain does not parse");
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes())
        .expect("the client key does not parse");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("rustls accepts the client certificate and key");
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

/// Connects to `addr` over TCP and completes a TLS handshake for `server_name` (sent as
/// SNI unless it is an IP address, and checked against the certificate).
///
/// # Errors
///
/// The I/O error from connecting, or the handshake failure (rustls errors arrive as
/// [`io::ErrorKind::InvalidData`] with the [`rustls::Error`] inside), so tests can assert a
/// handshake is refused.
pub async fn try_tls_connect(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config).connect(name, tcp).await
}

/// [`try_tls_connect`] for tests where the handshake must succeed.
///
/// # Panics
///
/// When connecting or the handshake fails.
pub async fn tls_connect(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> TlsStream<TcpStream> {
    try_tls_connect(addr, server_name, config)
        .await
        .unwrap_or_else(|error| panic!("TLS connect to {addr} as {server_name:?} failed: {error}"))
}

/// Sends `request` as HTTP/1.1 over `stream` and returns the response with its whole body.
///
/// The request body may be any body, so a test can stream it (from a channel, say) while
/// the exchange runs. The connection is driven in a spawned task (with upgrades allowed);
/// the request should carry a `host` header, since HTTP/1.1 requires one.
///
/// # Errors
///
/// hyper's error when the handshake, the exchange or reading the body fails (for example
/// when the peer closes without answering).
pub async fn try_http1_request<S, B>(
    stream: S,
    request: Request<B>,
) -> Result<Response<Bytes>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection.with_upgrades());
    let response = sender.send_request(request).await?;
    collect(response).await
}

/// [`try_http1_request`] with a buffered body, for tests where the exchange must succeed.
///
/// # Panics
///
/// When the exchange fails.
pub async fn http1_request<S>(stream: S, request: Request<Full<Bytes>>) -> Response<Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    http1_request_streaming(stream, request).await
}

/// [`try_http1_request`] with any request body, for tests where the exchange must succeed.
///
/// # Panics
///
/// When the exchange fails.
pub async fn http1_request_streaming<S, B>(stream: S, request: Request<B>) -> Response<Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    try_http1_request(stream, request)
        .await
        .unwrap_or_else(|error| panic!("HTTP/1.1 request failed: {error}"))
}

/// Sends `request` as HTTP/2 over `stream` and returns the response with its whole body.
///
/// Over cleartext this is prior knowledge; over TLS the stream should have negotiated `h2`
/// by ALPN. The request's URI should be absolute (`https://host/path`), since it supplies
/// the `:scheme` and `:authority` pseudo-headers; its version is set to HTTP/2. The body
/// may be any body, as for [`try_http1_request`].
///
/// # Errors
///
/// hyper's error when the handshake, the exchange or reading the body fails.
pub async fn try_http2_request<S, B>(
    stream: S,
    mut request: Request<B>,
) -> Result<Response<Bytes>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    *request.version_mut() = Version::HTTP_2;
    let response = sender.send_request(request).await?;
    collect(response).await
}

/// [`try_http2_request`] with a buffered body, for tests where the exchange must succeed.
///
/// # Panics
///
/// When the exchange fails.
pub async fn http2_request<S>(stream: S, request: Request<Full<Bytes>>) -> Response<Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    http2_request_streaming(stream, request).await
}

/// [`try_http2_request`] with any request body, for tests where the exchange must succeed.
///
/// # Panics
///
/// When the exchange fails.
pub async fn http2_request_streaming<S, B>(stream: S, request: Request<B>) -> Response<Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    try_http2_request(stream, request)
        .await
        .unwrap_or_else(|error| panic!("HTTP/2 request failed: {error}"))
}

async fn collect(
    response: Response<hyper::body::Incoming>,
) -> Result<Response<Bytes>, hyper::Error> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// Connects to `addr`, writes `bytes` and returns everything read until the peer closes
/// or `wait` has passed since connecting, whichever comes first.
///
/// A reset connection ends the read like a close does: what arrived before it is
/// returned. The write half is left open, so a server that waits for more input is only
/// cut short by `wait`.
///
/// # Panics
///
/// When connecting or writing fails.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"));
    stream
        .write_all(bytes)
        .await
        .unwrap_or_else(|error| panic!("cannot write to {addr}: {error}"));
    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// A client configuration that accepts any server certificate (still checking the
/// handshake signatures), for a server whose certificate was generated elsewhere, such as
/// `gangway demo`'s. Only for tests that check something other than the certificate.
pub fn insecure_tls_client_config(alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate(provider.clone()));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

/// Accepts every certificate; verifies that the server holds its key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

//! New TLS connections per second: connect, full TLS 1.3 handshake, one request, close.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::http1::request;
use crate::{Error, quantile};

/// `connections` loops, each opening one connection after another to `addr` until
/// `duration` has passed; prints connections per second and percentiles of the time from
/// `connect` to the end of the response.
pub(crate) async fn run(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
) -> Result<(), Error> {
    let connector = crate::tls::full_handshakes_unverified()?;
    let name = ServerName::try_from("localhost")?;
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(client(addr, connector.clone(), name.clone(), deadline)))
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (samples, failed) = task.await?;
        latencies.extend(samples);
        errors += failed;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let rate = latencies.len() as f64 / elapsed;
    println!(
        "handshakes={} seconds={elapsed:.2} handshakes_per_s={rate:.0} p50_us={} p99_us={} \
         errors={errors}",
        latencies.len(),
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.99),
    );
    Ok(())
}

async fn client(
    addr: SocketAddr,
    connector: TlsConnector,
    name: ServerName<'static>,
    deadline: Instant,
) -> (Vec<u32>, usize) {
    let (mut samples, mut errors) = (Vec::new(), 0);
    while Instant::now() < deadline {
        let started = Instant::now();
        match tokio::time::timeout(Duration::from_secs(10), one(addr, &connector, &name)).await {
            Ok(Ok(())) => {
                samples.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            Ok(Err(_)) | Err(_) => errors += 1,
        }
    }
    (samples, errors)
}

async fn one(
    addr: SocketAddr,
    connector: &TlsConnector,
    name: &ServerName<'static>,
) -> Result<(), Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut stream = connector.connect(name.clone(), stream).await?;
    request(&mut stream, true).await
}

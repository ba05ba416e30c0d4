//! The IGEL device gateway's TLS in miniature: a listener on 127.0.0.1 with the
//! `optional` client-certificate policy, one device that sends a valid certificate and one
//! that sends none, and what the engine would forward for each.
//!
//! `cargo run -p gangway-tls --example device_gateway`

use std::sync::Arc;

use gangway_tls::{
    CertificateSource, CertificateStore, ClientAuth, ClientCa, ClientCertPolicy, ListenerTls,
    PemSource, TlsVersions,
};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    // One CA for the gateway's certificate and the devices' (two in real life).
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Example Device CA");
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let server_cert =
        CertificateParams::new(vec!["ums.example.com".into()])?.signed_by(&server_key, &ca)?;
    let device_key = KeyPair::generate()?;
    let mut device_params = CertificateParams::default();
    device_params
        .distinguished_name
        .push(DnType::CommonName, "device-0001");
    device_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let device_cert = device_params.signed_by(&device_key, &ca)?;

    let store = CertificateStore::builder(provider.clone())
        .certificate(
            CertificateSource::Inline {
                chain: server_cert.pem(),
                key: server_key.serialize_pem(),
            },
            ["ums.example.com"],
        )
        .build()?;
    let client_auth = ClientAuth::new(
        ClientCertPolicy::Optional,
        Some(ClientCa::new(PemSource::Inline(ca_cert.pem()))),
        provider.clone(),
    )?;
    let listener = Arc::new(ListenerTls::new(
        Arc::new(store),
        Arc::new(client_auth),
        TlsVersions::Tls13Only,
        &[b"http/1.1"],
        provider.clone(),
    )?);

    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let address = tcp.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(listener.server_config());
    let server = {
        let listener = listener.clone();
        tokio::spawn(async move {
            for _ in 0..2 {
                let (socket, peer) = tcp.accept().await?;
                let stream = acceptor.accept(socket).await?;
                let session = listener.session(stream.get_ref().1);
                let identity = session.identity();
                println!(
                    "{peer} {} SNI={:?}",
                    session.version().map_or("?", |v| v.as_str()),
                    session.server_name()
                );
                println!("  $ssl_client_verify = {}", identity.status());
                match identity.forwarded() {
                    Some(certificate) => {
                        println!("  $ssl_client_s_dn   = {}", certificate.subject_dn());
                        println!(
                            "  X-SSL-CERT         = {}...",
                            &certificate.escaped_pem()[..60]
                        );
                    }
                    None => println!("  (no identity headers)"),
                }
            }
            Ok::<(), std::io::Error>(())
        })
    };

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone())?;
    let device_key_der = rustls::pki_types::PrivateKeyDer::try_from(device_key.serialize_der())?;
    let with_certificate = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(vec![device_cert.der().clone()], device_key_der)?;
    let without = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    for config in [with_certificate, without] {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let socket = TcpStream::connect(address).await?;
        drop(
            connector
                .connect(ServerName::try_from("ums.example.com")?, socket)
                .await?,
        );
    }
    server.await??;
    Ok(())
}

//! The SNI certificate store (acceptance 5) and the Host/SNI helpers.

use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::fixtures::{Ca, KEY_TYPES, KeyType, Leaf, client_config, handshake, provider};
use crate::{CertificateStore, ClientAuth, Error, ListenerTls, TlsVersions, UnknownSni};

struct Sites {
    ca: Ca,
    store: Arc<CertificateStore>,
    listener: ListenerTls,
    /// The leaf each configured certificate serves, in configuration order.
    leaves: Vec<rustls::pki_types::CertificateDer<'static>>,
}

fn sites(key_type: KeyType, unknown_sni: UnknownSni) -> Sites {
    let ca = Ca::new("Gangway Test Server CA", KeyType::EcdsaP256);
    let certificates = [
        ca.issue(&Leaf::server(&["ums.example.com"]).key_type(key_type)),
        ca.issue(&Leaf::server(&["webapp.example.com"]).key_type(key_type)),
        ca.issue(&Leaf::server(&["est.example.com"]).key_type(key_type)),
        ca.issue(&Leaf::server(&["*.devices.example.com"]).key_type(key_type)),
        ca.issue(&Leaf::server(&["fallback.example.com"]).key_type(key_type)),
    ];
    let store = CertificateStore::builder(provider())
        .certificate(certificates[0].source(), ["ums.example.com"])
        .certificate(certificates[1].source(), ["WebApp.Example.com."])
        // Names from the certificate's SANs.
        .certificate(certificates[2].source(), Vec::<String>::new())
        .certificate(certificates[3].source(), ["*.devices.example.com"])
        .default_certificate(certificates[4].source(), ["fallback.example.com"])
        .unknown_sni(unknown_sni)
        .build()
        .unwrap();
    let store = Arc::new(store);
    let listener = ListenerTls::new(
        store.clone(),
        Arc::new(ClientAuth::none(provider())),
        TlsVersions::Tls12And13,
        &[b"http/1.1"],
        provider(),
    )
    .unwrap();
    Sites {
        leaves: certificates.iter().map(|c| c.der.clone()).collect(),
        ca,
        store,
        listener,
    }
}

async fn served(
    sites: &Sites,
    name: &str,
) -> Result<rustls::pki_types::CertificateDer<'static>, String> {
    let client = client_config(TlsVersions::Tls12And13, &sites.ca, None);
    let done = handshake(
        sites.listener.server_config(),
        Arc::new(client),
        ServerName::try_from(name.to_owned()).unwrap(),
    )
    .await;
    if let Err(error) = &done.server {
        return Err(error.clone());
    }
    Ok(done.served_certificate())
}

#[tokio::test]
async fn sni_selects_among_three_names_and_a_wildcard() {
    for key_type in KEY_TYPES {
        let sites = sites(key_type, UnknownSni::Default);
        let cases = [
            ("ums.example.com", 0),
            ("webapp.example.com", 1),
            ("est.example.com", 2),
            ("meter-17.devices.example.com", 3),
            ("meter-18.devices.example.com", 3),
        ];
        for (name, index) in cases {
            let served = served(&sites, name).await.unwrap();
            assert_eq!(served, sites.leaves[index], "{name} with {key_type:?}");
        }
    }
}

#[tokio::test]
async fn unknown_sni_gets_the_default_or_a_handshake_failure() {
    let sites_default = sites(KeyType::EcdsaP256, UnknownSni::Default);
    let sites_reject = sites(KeyType::EcdsaP256, UnknownSni::Reject);
    // Unknown names, and names a one-label wildcard does not cover. The client verifies
    // the name, so only the server side's result counts here.
    for name in [
        "other.example.com",
        "a.b.devices.example.com",
        "devices.example.com",
    ] {
        let client = client_config(TlsVersions::Tls12And13, &sites_default.ca, None);
        let done = handshake(
            sites_default.listener.server_config(),
            Arc::new(client),
            ServerName::try_from(name.to_owned()).unwrap(),
        )
        .await;
        // The server served the default; the client refuses its name.
        assert!(done.client.is_err(), "{name}");
        assert!(
            done.server
                .as_ref()
                .is_err_and(|e| e.contains("BadCertificate")),
            "{name}: the client should have refused the default certificate's name"
        );
        assert_eq!(
            sites_default
                .store
                .select(Some(name))
                .unwrap()
                .end_entity_cert()
                .unwrap(),
            &sites_default.leaves[4]
        );
        let error = served(&sites_reject, name).await.unwrap_err();
        assert!(
            error.contains("no server certificate chain resolved"),
            "{name}: {error}"
        );
    }
    // No SNI (a client connecting by address).
    let client = client_config(TlsVersions::Tls12And13, &sites_default.ca, None);
    let done = handshake(
        sites_default.listener.server_config(),
        Arc::new(client),
        ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    )
    .await;
    assert!(done.client.is_err(), "the default has no IP SAN");
    assert!(sites_default.store.select(None).is_some());
    assert!(sites_reject.store.select(None).is_none());
}

#[test]
fn names_and_host_conflicts_for_421() {
    let sites = sites(KeyType::EcdsaP256, UnknownSni::Default);
    let store = &sites.store;
    assert_eq!(
        store.names(),
        [
            "ums.example.com",
            "webapp.example.com",
            "est.example.com",
            "*.devices.example.com",
            "fallback.example.com",
        ]
    );
    assert_eq!(store.lookup("UMS.example.com:8443"), Some(0));
    assert_eq!(store.lookup("x.devices.example.com."), Some(3));
    assert_eq!(store.lookup("unknown.example.com"), None);
    assert_eq!(store.fingerprints().len(), 5);

    // Host names another configured server than SNI: 421.
    assert!(store.host_conflicts(Some("ums.example.com"), "webapp.example.com"));
    assert!(store.host_conflicts(Some("a.devices.example.com"), "ums.example.com:443"));
    assert!(store.host_conflicts(Some("unknown.example.com"), "ums.example.com"));
    // The same name, the same certificate, an unconfigured Host, or no SNI: no conflict.
    assert!(!store.host_conflicts(Some("ums.example.com"), "UMS.EXAMPLE.COM:443"));
    assert!(!store.host_conflicts(Some("a.devices.example.com"), "b.devices.example.com"));
    assert!(!store.host_conflicts(Some("ums.example.com"), "unknown.example.com"));
    assert!(!store.host_conflicts(None, "ums.example.com"));
}

#[test]
fn invalid_and_duplicate_names_are_refused() {
    let ca = Ca::new("Gangway Test Server CA", KeyType::EcdsaP256);
    let one = ca.issue(&Leaf::server(&["one.example.com"]));
    let two = ca.issue(&Leaf::server(&["two.example.com"]));
    for name in [
        "",
        "*.*.example.com",
        "a.*.example.com",
        "a..example.com",
        "exa mple.com",
        "*",
    ] {
        let error = CertificateStore::builder(provider())
            .certificate(one.source(), [name])
            .build()
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidServerName { .. }),
            "{name}: {error}"
        );
    }
    let error = CertificateStore::builder(provider())
        .certificate(one.source(), ["same.example.com"])
        .certificate(two.source(), ["Same.Example.com"])
        .build()
        .unwrap_err();
    assert!(
        matches!(error, Error::DuplicateServerName { .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "server name `same.example.com` is given to two certificates \
         (in-memory certificate and in-memory certificate)"
    );
    let error = CertificateStore::builder(provider()).build().unwrap_err();
    assert!(matches!(error, Error::EmptyStore), "{error}");
    // A key that does not belong to the certificate.
    let mismatched = crate::CertificateSource::Inline {
        chain: one.pem.clone(),
        key: two.key_pem.clone(),
    };
    let error = CertificateStore::builder(provider())
        .certificate(mismatched, ["one.example.com"])
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::Rustls { .. }), "{error}");
}

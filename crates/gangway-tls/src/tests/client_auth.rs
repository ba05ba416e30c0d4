//! Client-certificate policies over real handshakes (acceptance 1, 2 and 4).

use std::sync::Arc;

use rcgen::ExtendedKeyUsagePurpose;
use rustls::server::danger::ClientCertVerifier as _;

use super::fixtures::{
    Ca, Issued, KEY_TYPES, KeyType, Leaf, Validity, client_config, provider, session,
};
use crate::{
    CertificateStore, ClientAuth, ClientCa, ClientCertPolicy, ClientIdentity, ListenerTls,
    PemSource, Reload as _, TlsVersion, TlsVersions, VerifyError, VerifyStatus,
};

/// The device CA, a server certificate for `gateway.example.com`, and the client
/// certificates every policy test sends.
struct World {
    server_ca: Ca,
    device_ca: Ca,
    server: Issued,
    valid: Issued,
    expired: Issued,
    not_yet_valid: Issued,
    wrong_ca: Issued,
    self_signed: Issued,
    server_auth_only: Issued,
}

impl World {
    fn new(key_type: KeyType) -> Self {
        let server_ca = Ca::new("Gangway Test Server CA", KeyType::EcdsaP256);
        let device_ca = Ca::new("Gangway Test Device CA", key_type);
        let other_ca = Ca::new("Some Other CA", key_type);
        let device = Leaf::client("device-0001").key_type(key_type);
        Self {
            server: server_ca.issue(&Leaf::server(&["gateway.example.com"])),
            valid: device_ca.issue(&device),
            expired: device_ca.issue(&device.clone().validity(Validity::Expired)),
            not_yet_valid: device_ca.issue(&device.clone().validity(Validity::NotYet)),
            wrong_ca: other_ca.issue(&device),
            self_signed: device.self_signed(),
            server_auth_only: device_ca.issue(
                &device
                    .clone()
                    .usages(vec![ExtendedKeyUsagePurpose::ServerAuth]),
            ),
            server_ca,
            device_ca,
        }
    }

    fn listener(&self, policy: ClientCertPolicy, versions: TlsVersions) -> ListenerTls {
        let ca = ClientCa::new(PemSource::Inline(self.device_ca.pem()));
        self.listener_with(policy, Some(ca), versions)
    }

    fn listener_with(
        &self,
        policy: ClientCertPolicy,
        ca: Option<ClientCa>,
        versions: TlsVersions,
    ) -> ListenerTls {
        let store = CertificateStore::single(self.server.source(), provider()).unwrap();
        let client_auth = ClientAuth::new(policy, ca, provider()).unwrap();
        ListenerTls::new(
            Arc::new(store),
            Arc::new(client_auth),
            versions,
            &[b"h2", b"http/1.1"],
            provider(),
        )
        .unwrap()
    }

    /// Connects presenting `client`, returning the server side's session or error.
    async fn connect(
        &self,
        listener: &ListenerTls,
        client: Option<&Issued>,
        versions: TlsVersions,
    ) -> Result<crate::TlsSession, String> {
        let config = client_config(versions, &self.server_ca, client);
        session(listener, config, "gateway.example.com").await
    }

    /// The invalid certificates with nginx's reason for each.
    fn invalid(&self) -> [(&'static str, &Issued, VerifyError); 5] {
        [
            ("expired", &self.expired, VerifyError::Expired),
            (
                "not yet valid",
                &self.not_yet_valid,
                VerifyError::NotYetValid,
            ),
            ("wrong CA", &self.wrong_ca, VerifyError::UnknownIssuer),
            ("self-signed", &self.self_signed, VerifyError::SelfSigned),
            (
                "serverAuth only",
                &self.server_auth_only,
                VerifyError::UnsuitablePurpose,
            ),
        ]
    }
}

fn assert_no_identity(identity: &ClientIdentity, case: &str) {
    assert!(identity.verified().is_none(), "{case}");
    assert!(identity.forwarded().is_none(), "{case}");
}

#[tokio::test]
async fn optional_fills_identity_only_for_a_valid_certificate() {
    for key_type in KEY_TYPES {
        let world = World::new(key_type);
        let listener = world.listener(ClientCertPolicy::Optional, TlsVersions::Tls13Only);
        let versions = TlsVersions::Tls13Only;

        // No certificate: forwarded, status NONE.
        let session = world.connect(&listener, None, versions).await.unwrap();
        let identity = session.identity();
        assert_eq!(identity.status(), &VerifyStatus::None);
        assert_eq!(identity.status().to_string(), "NONE");
        assert!(!identity.rejects_request());
        assert_no_identity(identity, "no certificate");

        // A valid device certificate: SUCCESS and the escaped PEM of the leaf.
        let session = world
            .connect(&listener, Some(&world.valid), versions)
            .await
            .unwrap();
        let identity = session.identity();
        assert_eq!(identity.status().to_string(), "SUCCESS", "{key_type:?}");
        assert!(!identity.rejects_request());
        let certificate = identity.forwarded().unwrap();
        assert_eq!(certificate.pem(), world.valid.pem);
        assert!(
            certificate
                .escaped_pem()
                .starts_with("-----BEGIN%20CERTIFICATE-----%0A")
        );
        assert!(
            certificate
                .escaped_pem()
                .ends_with("-----END%20CERTIFICATE-----%0A")
        );
        assert_eq!(
            certificate.subject_dn(),
            "O=Gangway Test Devices,CN=device-0001"
        );
        assert_eq!(
            certificate.issuer_dn(),
            "O=Gangway Test,CN=Gangway Test Device CA"
        );
        assert_eq!(certificate.serial(), "1001");
        assert_eq!(
            certificate.sha256_fingerprint(),
            crate::Sha256Fingerprint::of(world.valid.der.as_ref())
        );
        assert_eq!(session.version(), Some(TlsVersion::Tls13));
        assert_eq!(session.server_name(), Some("gateway.example.com"));
        assert_eq!(session.alpn(), None);

        // Invalid certificates: forwarded without identity, with the reason.
        for (case, client, reason) in world.invalid() {
            let session = world.connect(&listener, Some(client), versions).await;
            let session = session.unwrap_or_else(|error| panic!("{case}: {error}"));
            let identity = session.identity();
            assert_eq!(
                identity.status(),
                &VerifyStatus::Failed(reason.clone()),
                "{case}"
            );
            assert_eq!(identity.status().to_string(), format!("FAILED:{reason}"));
            assert!(!identity.rejects_request(), "{case}");
            assert_no_identity(identity, case);
            assert_eq!(identity.presented().unwrap().der(), &client.der, "{case}");
        }
    }
}

#[tokio::test]
async fn required_fails_the_handshake_for_every_invalid_certificate() {
    for key_type in KEY_TYPES {
        let world = World::new(key_type);
        let listener = world.listener(ClientCertPolicy::Required, TlsVersions::Tls12And13);
        for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
            let session = world.connect(&listener, Some(&world.valid), versions).await;
            let identity = session.unwrap().identity().clone();
            assert_eq!(identity.status(), &VerifyStatus::Success, "{key_type:?}");
            assert!(identity.forwarded().is_some());

            let error = world.connect(&listener, None, versions).await.unwrap_err();
            assert!(error.contains("peer sent no certificates"), "{error}");
            for (case, client, _) in world.invalid() {
                let result = world.connect(&listener, Some(client), versions).await;
                assert!(result.is_err(), "{case} was served under `required`");
            }
        }
    }
}

#[tokio::test]
async fn optional_reject_refuses_invalid_certificates_with_400() {
    let world = World::new(KeyType::EcdsaP256);
    let listener = world.listener(ClientCertPolicy::OptionalReject, TlsVersions::Tls12And13);
    let versions = TlsVersions::Tls12And13;
    let none = world.connect(&listener, None, versions).await.unwrap();
    assert!(!none.identity().rejects_request());
    assert_eq!(none.identity().status(), &VerifyStatus::None);
    let valid = world
        .connect(&listener, Some(&world.valid), versions)
        .await
        .unwrap();
    assert!(!valid.identity().rejects_request());
    assert!(valid.identity().forwarded().is_some());
    for (case, client, reason) in world.invalid() {
        let session = world
            .connect(&listener, Some(client), versions)
            .await
            .unwrap();
        let identity = session.identity();
        assert!(identity.rejects_request(), "{case}");
        assert_eq!(identity.status(), &VerifyStatus::Failed(reason), "{case}");
        assert_no_identity(identity, case);
    }
}

#[tokio::test]
async fn optional_unverified_passes_untrusted_issuers_on_with_their_status() {
    let world = World::new(KeyType::EcdsaP256);
    let versions = TlsVersions::Tls12And13;
    let with_ca = world.listener(ClientCertPolicy::OptionalUnverified, versions);
    for (case, client, reason) in world.invalid() {
        let session = world
            .connect(&with_ca, Some(client), versions)
            .await
            .unwrap();
        let identity = session.identity();
        assert_eq!(
            identity.status(),
            &VerifyStatus::Failed(reason.clone()),
            "{case}"
        );
        assert!(identity.verified().is_none(), "{case}");
        if reason.is_untrusted_issuer() {
            // As nginx optional_no_ca: forwarded, the certificate passed on.
            assert!(!identity.rejects_request(), "{case}");
            assert_eq!(identity.forwarded().unwrap().der(), &client.der, "{case}");
        } else {
            // As nginx optional_no_ca: 400 for anything but the issuer.
            assert!(identity.rejects_request(), "{case}");
            assert!(identity.forwarded().is_none(), "{case}");
        }
    }
    let valid = world
        .connect(&with_ca, Some(&world.valid), versions)
        .await
        .unwrap();
    assert_eq!(valid.identity().status(), &VerifyStatus::Success);

    // Without a CA bundle nothing verifies; the certificate is still passed on.
    let without_ca = world.listener_with(ClientCertPolicy::OptionalUnverified, None, versions);
    let session = world
        .connect(&without_ca, Some(&world.valid), versions)
        .await
        .unwrap();
    let identity = session.identity();
    assert_eq!(
        identity.status().to_string(),
        "FAILED:unable to verify the first certificate"
    );
    assert_eq!(identity.forwarded().unwrap().der(), &world.valid.der);
    assert!(!identity.rejects_request());
}

#[tokio::test]
async fn none_asks_for_no_certificate() {
    let world = World::new(KeyType::EcdsaP256);
    let listener = world.listener_with(ClientCertPolicy::None, None, TlsVersions::Tls12And13);
    let session = world
        .connect(&listener, Some(&world.valid), TlsVersions::Tls12And13)
        .await
        .unwrap();
    assert_eq!(session.identity().status(), &VerifyStatus::None);
    assert!(session.identity().presented().is_none());
}

#[tokio::test]
async fn tls12_client_is_refused_by_a_tls13_only_listener() {
    let world = World::new(KeyType::EcdsaP256);
    let listener = world.listener(ClientCertPolicy::Optional, TlsVersions::Tls13Only);
    let error = world
        .connect(&listener, Some(&world.valid), TlsVersions::Tls12Only)
        .await
        .unwrap_err();
    assert!(error.contains("Tls12NotOfferedOrEnabled"), "{error}");

    // A listener that allows both reports what was negotiated, for per-route minimums.
    let both = world.listener(ClientCertPolicy::Optional, TlsVersions::Tls12And13);
    let tls12 = world
        .connect(&both, None, TlsVersions::Tls12Only)
        .await
        .unwrap();
    assert_eq!(tls12.version(), Some(TlsVersion::Tls12));
    let tls13 = world
        .connect(&both, None, TlsVersions::Tls12And13)
        .await
        .unwrap();
    assert_eq!(tls13.version(), Some(TlsVersion::Tls13));
}

#[tokio::test]
async fn chains_through_intermediates_and_tells_untrusted_chains_apart() {
    let world = World::new(KeyType::EcdsaP256);
    let intermediate = world.device_ca.intermediate("Gangway Test Device Sub-CA");
    let through_intermediate = intermediate.issue(&Leaf::client("device-0002"));
    let listener = world.listener(ClientCertPolicy::Optional, TlsVersions::Tls12And13);
    let versions = TlsVersions::Tls12And13;
    let session = world
        .connect(&listener, Some(&through_intermediate), versions)
        .await
        .unwrap();
    assert_eq!(session.identity().status(), &VerifyStatus::Success);
    assert_eq!(
        session.identity().verified().unwrap().issuer_dn(),
        "O=Gangway Test,CN=Gangway Test Device Sub-CA"
    );

    // The same kind of chain under a root that is not trusted.
    let other_root = Ca::new("Untrusted Root", KeyType::EcdsaP256);
    let other_intermediate = other_root.intermediate("Untrusted Sub-CA");
    let mut untrusted = other_intermediate.issue(&Leaf::client("device-0003"));
    let session = world
        .connect(&listener, Some(&untrusted), versions)
        .await
        .unwrap();
    assert_eq!(
        session.identity().status(),
        &VerifyStatus::Failed(VerifyError::UntrustedChain)
    );
    untrusted.intermediates.push(other_root.issued.der.clone());
    untrusted.intermediates_pem.push_str(&other_root.pem());
    let session = world
        .connect(&listener, Some(&untrusted), versions)
        .await
        .unwrap();
    assert_eq!(
        session.identity().status().to_string(),
        "FAILED:self-signed certificate in certificate chain"
    );
}

#[tokio::test]
async fn crls_revoke_certificates() {
    let world = World::new(KeyType::EcdsaP256);
    let revoked = world
        .device_ca
        .issue(&Leaf::client("device-0004").serial(0x4004));
    let crl = world.device_ca.crl(&[0x4004]);
    let ca = ClientCa::new(PemSource::Inline(world.device_ca.pem())).crl(PemSource::Inline(crl));
    let listener = world.listener_with(
        ClientCertPolicy::Optional,
        Some(ca),
        TlsVersions::Tls12And13,
    );
    let versions = TlsVersions::Tls12And13;
    let session = world
        .connect(&listener, Some(&revoked), versions)
        .await
        .unwrap();
    assert_eq!(
        session.identity().status().to_string(),
        "FAILED:certificate revoked"
    );
    let session = world
        .connect(&listener, Some(&world.valid), versions)
        .await
        .unwrap();
    assert_eq!(session.identity().status(), &VerifyStatus::Success);

    // A CRL of another CA covers nothing: the status of the device CA's certificates is
    // unknown, which fails as OpenSSL's CRL_CHECK does.
    let other = Ca::new("Some Other CA", KeyType::EcdsaP256);
    let ca = ClientCa::new(PemSource::Inline(world.device_ca.pem()))
        .crl(PemSource::Inline(other.crl(&[])));
    let listener = world.listener_with(
        ClientCertPolicy::Optional,
        Some(ca),
        TlsVersions::Tls12And13,
    );
    let session = world
        .connect(&listener, Some(&world.valid), versions)
        .await
        .unwrap();
    assert_eq!(
        session.identity().status().to_string(),
        "FAILED:unable to get certificate CRL"
    );
}

#[test]
fn certificate_request_hints_the_ca_names_and_follows_reloads() {
    let first = Ca::new("First Device CA", KeyType::EcdsaP256);
    let second = Ca::new("Second Device CA", KeyType::EcdsaP256);
    let dir = super::TempDir::new("hints");
    let bundle = dir.path("ca.pem");
    std::fs::write(&bundle, first.pem()).unwrap();
    let auth = ClientAuth::new(
        ClientCertPolicy::Optional,
        Some(ClientCa::new(PemSource::File(bundle.clone()))),
        provider(),
    )
    .unwrap();
    assert!(auth.offer_client_auth());
    assert!(!auth.client_auth_mandatory());
    let names = |auth: &ClientAuth| -> Vec<Vec<u8>> {
        auth.root_hint_subjects()
            .iter()
            .map(|name| name.as_ref().to_vec())
            .collect()
    };
    let first_names = names(&auth);
    assert_eq!(first_names.len(), 1);
    std::fs::write(&bundle, format!("{}{}", first.pem(), second.pem())).unwrap();
    let report = auth.reload().unwrap();
    assert_eq!(report.changed, [bundle.display().to_string()]);
    assert_eq!(names(&auth).len(), 2);
    assert_eq!(names(&auth)[0], first_names[0]);
    // Reloading unchanged content changes nothing.
    assert!(auth.reload().unwrap().changed.is_empty());
    assert!(auth.reload_if_changed().unwrap().is_none());
}

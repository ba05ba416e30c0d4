//! Hot reload (acceptance 7): new handshakes see new files, open connections stay, broken
//! files keep the old material.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::fixtures::{Ca, Issued, KeyType, Leaf, TempDir, client_config, handshake, provider};
use crate::{
    CertificateSource, CertificateStore, ClientAuth, ClientCa, ClientCertPolicy, Error,
    ListenerTls, PemSource, Reload, TlsVersions, VerifyStatus, spawn_watcher,
};

struct Files {
    dir: TempDir,
}

impl Files {
    fn new(name: &str) -> Self {
        Self {
            dir: TempDir::new(name),
        }
    }

    fn write(&self, certificate: &Issued) {
        // Written as renewal tools do: the key first, then the certificate.
        std::fs::write(self.dir.path("key.pem"), &certificate.key_pem).unwrap();
        std::fs::write(self.dir.path("cert.pem"), certificate.chain_pem()).unwrap();
    }

    fn source(&self) -> CertificateSource {
        CertificateSource::Files {
            chain: self.dir.path("cert.pem"),
            key: self.dir.path("key.pem"),
        }
    }
}

fn listener(store: Arc<CertificateStore>) -> ListenerTls {
    ListenerTls::new(
        store,
        Arc::new(ClientAuth::none(provider())),
        TlsVersions::Tls12And13,
        &[],
        provider(),
    )
    .unwrap()
}

async fn served(listener: &ListenerTls, ca: &Ca) -> rustls::pki_types::CertificateDer<'static> {
    let client = client_config(TlsVersions::Tls12And13, ca, None);
    let done = handshake(
        listener.server_config(),
        Arc::new(client),
        ServerName::try_from("gateway.example.com").unwrap(),
    )
    .await;
    done.server.as_ref().unwrap();
    done.served_certificate()
}

#[tokio::test]
async fn replaced_files_serve_new_handshakes_and_broken_ones_keep_the_old() {
    for key_type in [KeyType::EcdsaP256, KeyType::Ed25519, KeyType::Rsa2048] {
        let ca = Ca::new("Gangway Test Server CA", KeyType::EcdsaP256);
        let leaf = Leaf::server(&["gateway.example.com"]).key_type(key_type);
        let first = ca.issue(&leaf.clone().serial(1));
        let second = ca.issue(&leaf.clone().serial(2));
        let files = Files::new("store");
        files.write(&first);
        let store = Arc::new(CertificateStore::single(files.source(), provider()).unwrap());
        let listener = listener(store.clone());
        assert_eq!(served(&listener, &ca).await, first.der);

        // A connection opened before the reload.
        let client = client_config(TlsVersions::Tls12And13, &ca, None);
        let open = handshake(
            listener.server_config(),
            Arc::new(client),
            ServerName::try_from("gateway.example.com").unwrap(),
        )
        .await;
        let (mut server_side, mut client_side) = (open.server.unwrap(), open.client.unwrap());

        files.write(&second);
        let report = store.reload().unwrap();
        let cert_path = files.dir.path("cert.pem").display().to_string();
        assert_eq!(report.changed, std::slice::from_ref(&cert_path));
        assert_eq!(served(&listener, &ca).await, second.der, "{key_type:?}");

        // The open connection still carries data, on the certificate it negotiated.
        client_side.write_all(b"still here").await.unwrap();
        client_side.flush().await.unwrap();
        let mut buffer = [0u8; 10];
        server_side.read_exact(&mut buffer).await.unwrap();
        assert_eq!(&buffer, b"still here");
        assert_eq!(
            client_side.get_ref().1.peer_certificates().unwrap()[0],
            first.der
        );

        // A corrupt certificate file: an error naming the file, the old material stays.
        std::fs::write(
            files.dir.path("cert.pem"),
            "-----BEGIN CERTIFICATE-----\ngarbage",
        )
        .unwrap();
        let error = store.reload().unwrap_err();
        assert!(error.to_string().contains(&cert_path), "{error}");
        assert_eq!(served(&listener, &ca).await, second.der);
        // The same broken content is not retried by the watcher's check.
        assert!(store.reload_if_changed().unwrap().is_none());

        // A certificate whose key has not been written yet: refused, old material stays.
        // (P-384: a key type none of the loop's certificates has, so the key differs.)
        let third = ca.issue(&leaf.clone().serial(3).key_type(KeyType::EcdsaP384));
        std::fs::write(files.dir.path("cert.pem"), third.chain_pem()).unwrap();
        let error = store.reload_if_changed().unwrap_err();
        assert!(matches!(error, Error::Rustls { .. }), "{error}");
        assert_eq!(served(&listener, &ca).await, second.der);

        // Once the key follows, the change is picked up.
        std::fs::write(files.dir.path("key.pem"), &third.key_pem).unwrap();
        let report = store.reload_if_changed().unwrap().unwrap();
        assert_eq!(report.changed, [cert_path]);
        assert_eq!(served(&listener, &ca).await, third.der);
        assert!(store.reload_if_changed().unwrap().is_none());
    }
}

#[tokio::test]
async fn a_missing_file_keeps_the_old_material() {
    let ca = Ca::new("Gangway Test Server CA", KeyType::EcdsaP256);
    let first = ca.issue(&Leaf::server(&["gateway.example.com"]));
    let files = Files::new("missing");
    files.write(&first);
    let store = Arc::new(CertificateStore::single(files.source(), provider()).unwrap());
    std::fs::remove_file(files.dir.path("key.pem")).unwrap();
    let error = store.reload().unwrap_err();
    assert!(matches!(error, Error::Read { .. }), "{error}");
    assert!(error.to_string().contains("key.pem"), "{error}");
    assert_eq!(served(&listener(store), &ca).await, first.der);
}

#[tokio::test]
async fn the_watcher_reloads_changed_files() {
    let ca = Ca::new("Gangway Test Server CA", KeyType::EcdsaP256);
    let leaf = Leaf::server(&["gateway.example.com"]);
    let first = ca.issue(&leaf.clone().serial(1));
    let second = ca.issue(&leaf.serial(2));
    let files = Files::new("watcher");
    files.write(&first);
    let store = Arc::new(CertificateStore::single(files.source(), provider()).unwrap());
    let listener = Arc::new(listener(store.clone()));
    let watcher = spawn_watcher(listener.clone(), Duration::from_millis(20)).unwrap();
    assert_eq!(listener.watched_files().len(), 2);
    files.write(&second);
    let expected = crate::Sha256Fingerprint::of(second.der.as_ref());
    // Bounded wait: the watcher polls every 20 ms.
    for _ in 0..250 {
        if store.fingerprints() == [expected] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.fingerprints(), [expected]);
    assert_eq!(served(&listener, &ca).await, second.der);
    watcher.stop();
}

#[test]
fn client_ca_and_crl_reload() {
    let first_ca = Ca::new("First Device CA", KeyType::EcdsaP256);
    let second_ca = Ca::new("Second Device CA", KeyType::EcdsaP256);
    let from_first = first_ca.issue(&Leaf::client("device-1").serial(0x11));
    let from_second = second_ca.issue(&Leaf::client("device-2").serial(0x22));
    let dir = TempDir::new("client-ca");
    let (bundle, crl) = (dir.path("ca.pem"), dir.path("crl.pem"));
    std::fs::write(&bundle, first_ca.pem()).unwrap();
    std::fs::write(&crl, first_ca.crl(&[])).unwrap();
    let auth = ClientAuth::new(
        ClientCertPolicy::Optional,
        Some(ClientCa::new(PemSource::File(bundle.clone())).crl(PemSource::File(crl.clone()))),
        provider(),
    )
    .unwrap();
    let status = |certificate: &Issued| auth.identify(Some(&certificate.chain())).status().clone();
    assert_eq!(status(&from_first), VerifyStatus::Success);
    assert_ne!(status(&from_second), VerifyStatus::Success);

    // The first CA revokes its device.
    std::fs::write(&crl, first_ca.crl(&[0x11])).unwrap();
    auth.reload_if_changed().unwrap().unwrap();
    assert_eq!(
        status(&from_first).to_string(),
        "FAILED:certificate revoked"
    );

    // The bundle moves to the second CA (with its own CRL).
    std::fs::write(&bundle, second_ca.pem()).unwrap();
    std::fs::write(&crl, second_ca.crl(&[])).unwrap();
    let report = auth.reload().unwrap();
    assert_eq!(report.changed.len(), 2);
    assert_eq!(status(&from_second), VerifyStatus::Success);
    assert_eq!(
        status(&from_first).to_string(),
        "FAILED:unable to verify the first certificate"
    );

    // A broken CRL keeps the previous bundle and CRLs.
    std::fs::write(
        &crl,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let error = auth.reload().unwrap_err();
    assert!(error.to_string().contains("crl.pem"), "{error}");
    assert_eq!(status(&from_second), VerifyStatus::Success);
}

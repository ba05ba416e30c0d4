//! Byte-for-byte compatibility with nginx's `$ssl_client_*` variables (acceptance 3),
//! against the vectors `tests/interop/nginx-escaped-cert.sh` captured from real nginx.

use rcgen::{DnType, DnValue};
use rustls::pki_types::{CertificateDer, UnixTime};

use super::fixtures::{KeyType, provider};
use crate::identity::{asn1_time_print, escape_uri_component, serial_hex};
use crate::pem::parse_certificates;
use crate::{
    ClientAuth, ClientCa, ClientCertPolicy, PeerCertificate, PemSource, SubjectAltName,
    VerifyStatus,
};

fn vector(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    std::fs::read_to_string(format!("{path}{name}")).unwrap_or_else(|error| {
        panic!("{path}{name}: {error}; run tests/interop/nginx-escaped-cert.sh")
    })
}

fn certificate(name: &str) -> CertificateDer<'static> {
    parse_certificates(vector(name).as_bytes(), name)
        .unwrap()
        .remove(0)
}

#[test]
fn reproduces_nginx_client_variables_byte_for_byte() {
    let der = certificate("nginx-device.pem");
    let peer = PeerCertificate::from_der(&der).unwrap();
    assert_eq!(peer.escaped_pem(), vector("nginx-device.escaped"));
    assert_eq!(peer.pem(), vector("nginx-device.raw"));
    assert_eq!(peer.pem(), vector("nginx-device.pem"));
    assert_eq!(peer.subject_dn(), vector("nginx-device.s_dn"));
    assert_eq!(peer.issuer_dn(), vector("nginx-device.i_dn"));
    assert_eq!(peer.serial(), vector("nginx-device.serial"));
    assert_eq!(
        peer.nginx_sha1_fingerprint(),
        vector("nginx-device.fingerprint")
    );
    assert_eq!(peer.not_before_text(), vector("nginx-device.v_start"));
    assert_eq!(peer.not_after_text(), vector("nginx-device.v_end"));
    assert_eq!(
        peer.subject_alt_names(),
        [
            SubjectAltName::Dns("device-0001.devices.example.com".into()),
            SubjectAltName::Ip([192, 0, 2, 17].into()),
            SubjectAltName::Email("device-0001@example.com".into()),
            SubjectAltName::Uri("urn:igel:device:0001".into()),
        ]
    );
    assert_eq!(
        peer.subject_alt_names()[1].to_string(),
        "IP:192.0.2.17",
        "OpenSSL-style SAN text"
    );
}

fn auth(policy: ClientCertPolicy) -> ClientAuth {
    let ca = ClientCa::new(PemSource::Inline(vector("nginx-ca.pem")));
    ClientAuth::new(policy, Some(ca), provider()).unwrap()
}

#[test]
fn verify_status_and_decisions_match_nginx() {
    let device = certificate("nginx-device.pem");
    let optional = auth(ClientCertPolicy::Optional);
    let identity = optional.identify(Some(&[device]));
    assert_eq!(identity.status().to_string(), vector("nginx-device.verify"));

    let reject = auth(ClientCertPolicy::OptionalReject);
    let unverified = auth(ClientCertPolicy::OptionalUnverified);
    for case in ["expired", "wrong-ca", "self-signed", "server-eku"] {
        let der = certificate(&format!("nginx-invalid-{case}.pem"));
        let chain = [der];
        // OpenSSL's reason text.
        let identity = optional.identify(Some(&chain));
        let VerifyStatus::Failed(error) = identity.status() else {
            panic!("{case} verified");
        };
        assert_eq!(
            error.reason(),
            vector(&format!("nginx-invalid-{case}.reason")),
            "{case}"
        );
        assert!(!identity.rejects_request(), "{case}: `optional` forwards");

        // nginx `optional` answers 400: gangway's `optional_reject`.
        assert_eq!(vector(&format!("nginx-invalid-{case}.optional")), "400");
        assert!(reject.identify(Some(&chain)).rejects_request(), "{case}");

        // nginx `optional_no_ca`: gangway's `optional_unverified`.
        let identity = unverified.identify(Some(&chain));
        let nginx = vector(&format!("nginx-invalid-{case}.optional_no_ca"));
        match nginx.strip_prefix("200 ") {
            Some(verify) => {
                assert!(!identity.rejects_request(), "{case}");
                assert_eq!(identity.status().to_string(), verify, "{case}");
                assert!(identity.forwarded().is_some(), "{case}");
            }
            None => {
                assert_eq!(nginx, "400", "{case}");
                assert!(identity.rejects_request(), "{case}");
            }
        }
    }
}

#[test]
fn expiry_is_judged_at_the_given_time() {
    let auth = auth(ClientCertPolicy::Optional);
    let expired = [certificate("nginx-invalid-expired.pem")];
    // Valid from 2020-01-01 to 2021-01-01.
    let mid_2020 = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_593_561_600));
    assert_eq!(
        auth.identify_at(Some(&expired), mid_2020).status(),
        &VerifyStatus::Success
    );
    assert_eq!(
        auth.identify(Some(&expired)).status().to_string(),
        "FAILED:certificate has expired"
    );
}

/// A certificate whose subject is `entries`, one RDN each.
fn named(entries: Vec<(DnType, DnValue)>) -> PeerCertificate {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in entries {
        params.distinguished_name.push(kind, value);
    }
    let key = KeyType::EcdsaP256.key();
    let certificate = params.self_signed(&key).unwrap();
    PeerCertificate::from_der(certificate.der()).unwrap()
}

#[test]
fn dn_escaping_follows_openssl_rfc2253() {
    let cases: Vec<(Vec<(DnType, DnValue)>, &str)> = vec![
        // Leading and trailing spaces, a leading `#`, the RFC 2253 specials.
        (
            vec![(DnType::CommonName, " lead#, + \" \\ < > ; = trail ".into())],
            "CN=\\ lead#\\, \\+ \\\" \\\\ \\< \\> \\; = trail\\ ",
        ),
        (vec![(DnType::CommonName, "#hash".into())], "CN=\\#hash"),
        // Control bytes and DEL as hex.
        (
            vec![(DnType::CommonName, "tab\there\u{7f}".into())],
            "CN=tab\\09here\\7F",
        ),
        // UTF-8 bytes as hex, whatever the string type (BMP is converted to UTF-8 first).
        (
            vec![(DnType::LocalityName, "Zürich".into())],
            "L=Z\\C3\\BCrich",
        ),
        (
            vec![(
                DnType::OrganizationName,
                DnValue::BmpString("Zürich €".try_into().unwrap()),
            )],
            "O=Z\\C3\\BCrich \\E2\\82\\AC",
        ),
        (
            vec![(
                DnType::OrganizationName,
                DnValue::UniversalString("a😀".try_into().unwrap()),
            )],
            "O=a\\F0\\9F\\98\\80",
        ),
        (
            vec![(
                DnType::CountryName,
                DnValue::PrintableString("DE".try_into().unwrap()),
            )],
            "C=DE",
        ),
        (
            vec![(
                DnType::CommonName,
                DnValue::TeletexString("t61".try_into().unwrap()),
            )],
            "CN=t61",
        ),
        // RDNs in reverse order; names OpenSSL does not know dumped as DER.
        (
            vec![
                (DnType::CountryName, "DE".into()),
                (
                    DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, 1]),
                    "x".into(),
                ),
                (DnType::CommonName, "device".into()),
            ],
            "CN=device,1.3.6.1.4.1.99999.1=#0C0178,C=DE",
        ),
        (
            vec![
                (
                    DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
                    "example".into(),
                ),
                (
                    DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                    "a@b.example".into(),
                ),
            ],
            "emailAddress=a@b.example,DC=example",
        ),
    ];
    for (entries, expected) in cases {
        assert_eq!(named(entries).subject_dn(), expected);
    }
}

#[test]
fn nginx_encodings_of_small_values() {
    assert_eq!(
        escape_uri_component(b"AZaz09-._~ /+=\n%"),
        "AZaz09-._~%20%2F%2B%3D%0A%25"
    );
    assert_eq!(serial_hex(&[0x00, 0xc0, 0xff, 0xee]), "C0FFEE");
    assert_eq!(serial_hex(&[0x01]), "01");
    assert_eq!(serial_hex(&[0x00]), "00");
    assert_eq!(serial_hex(&[0xff]), "-01");
    assert_eq!(serial_hex(&[0xff, 0x00]), "-0100");
    assert_eq!(asn1_time_print(0), "Jan  1 00:00:00 1970 GMT");
    assert_eq!(asn1_time_print(1_709_251_199), "Feb 29 23:59:59 2024 GMT");
    assert_eq!(asn1_time_print(4_102_444_800), "Jan  1 00:00:00 2100 GMT");
    assert_eq!(asn1_time_print(-1), "Dec 31 23:59:59 1969 GMT");
}

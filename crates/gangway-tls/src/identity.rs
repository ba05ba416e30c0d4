//! What a client certificate says, in the forms nginx's `$ssl_client_*` variables use.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::Error;
use crate::client_auth::ClientCertPolicy;
use crate::dn::rfc2253;
use crate::pem::certificate_pem;

/// A SHA-256 fingerprint of a certificate's DER encoding.
///
/// Displays as 64 lower-case hex digits without separators (the form of gangway's
/// `$ssl_client_fingerprint`); parses from hex with or without `:` separators, in either
/// case, so `openssl x509 -noout -fingerprint -sha256` output can be pasted as a pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Fingerprint([u8; 32]);

impl Sha256Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Upper-case hex pairs joined by `:`, as OpenSSL prints fingerprints.
    pub fn to_colon_hex(&self) -> String {
        let mut out = String::with_capacity(95);
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            let _ = write!(out, "{byte:02X}");
        }
        out
    }
}

impl From<[u8; 32]> for Sha256Fingerprint {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for Sha256Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Sha256Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Fingerprint({self})")
    }
}

impl FromStr for Sha256Fingerprint {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidFingerprint {
            input: input.to_owned(),
        };
        let trimmed = input.trim();
        // Accept `sha256 Fingerprint=AB:CD:...` as openssl prints it.
        let hex = trimmed.rsplit('=').next().unwrap_or(trimmed);
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let high = hex_value(pair[0]).ok_or_else(invalid)?;
            let low = hex_value(pair[1]).ok_or_else(invalid)?;
            *byte = (high << 4) | low;
        }
        Ok(Self(bytes))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// A subject alternative name of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubjectAltName {
    /// `dNSName`.
    Dns(String),
    /// `iPAddress`.
    Ip(IpAddr),
    /// `rfc822Name`.
    Email(String),
    /// `uniformResourceIdentifier`.
    Uri(String),
    /// `directoryName`, formatted like the subject DN.
    DirectoryName(String),
    /// Any other kind (`otherName`, `registeredID`, ...), or a malformed entry.
    Other,
}

impl fmt::Display for SubjectAltName {
    /// With OpenSSL-like prefixes: `DNS:`, `IP:`, `email:`, `URI:`, `DirName:`; other
    /// kinds print as `othername`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => write!(f, "DNS:{name}"),
            Self::Ip(address) => write!(f, "IP:{address}"),
            Self::Email(address) => write!(f, "email:{address}"),
            Self::Uri(uri) => write!(f, "URI:{uri}"),
            Self::DirectoryName(name) => write!(f, "DirName:{name}"),
            Self::Other => f.write_str("othername"),
        }
    }
}

/// A client's leaf certificate and everything the engine's variables take from it.
///
/// Each value is computed once, when the connection's identity is established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    der: CertificateDer<'static>,
    pem: String,
    escaped_pem: String,
    subject: String,
    issuer: String,
    serial: String,
    sha256: Sha256Fingerprint,
    sha1_hex: String,
    not_before: SystemTime,
    not_after: SystemTime,
    not_before_text: String,
    not_after_text: String,
    subject_alt_names: Vec<SubjectAltName>,
    self_issued: bool,
    raw_subject: Vec<u8>,
    raw_issuer: Vec<u8>,
}

impl PeerCertificate {
    /// Parses a DER certificate (with x509-parser) into the variable values.
    pub fn from_der(der: &CertificateDer<'_>) -> Result<Self, Error> {
        let (_, certificate) =
            X509Certificate::from_der(der.as_ref()).map_err(|error| Error::Malformed {
                origin: "client certificate".to_owned(),
                what: "certificate".to_owned(),
                source: Box::new(error),
            })?;
        let pem = certificate_pem(der.as_ref());
        let validity = certificate.validity();
        let not_before = validity.not_before.timestamp();
        let not_after = validity.not_after.timestamp();
        let subject_alt_names = match certificate.subject_alternative_name() {
            Ok(Some(extension)) => extension
                .value
                .general_names
                .iter()
                .map(subject_alt_name)
                .collect(),
            Ok(None) | Err(_) => Vec::new(),
        };
        Ok(Self {
            der: der.clone().into_owned(),
            escaped_pem: escape_uri_component(pem.as_bytes()),
            pem,
            subject: rfc2253(certificate.subject()),
            issuer: rfc2253(certificate.issuer()),
            serial: serial_hex(certificate.raw_serial()),
            sha256: Sha256Fingerprint::of(der.as_ref()),
            sha1_hex: Sha1::digest(der.as_ref()).iter().fold(
                String::with_capacity(40),
                |mut out, byte| {
                    let _ = write!(out, "{byte:02x}");
                    out
                },
            ),
            not_before: unix_time(not_before),
            not_after: unix_time(not_after),
            not_before_text: asn1_time_print(not_before),
            not_after_text: asn1_time_print(not_after),
            subject_alt_names,
            self_issued: certificate.subject().as_raw() == certificate.issuer().as_raw(),
            raw_subject: certificate.subject().as_raw().to_vec(),
            raw_issuer: certificate.issuer().as_raw().to_vec(),
        })
    }

    /// The certificate as received (DER).
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The certificate as PEM with its trailing newline: nginx `$ssl_client_raw_cert`.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The PEM URL-escaped, byte-identical to nginx `$ssl_client_escaped_cert`: every byte
    /// except `A-Z a-z 0-9 - . _ ~` as `%XX` with upper-case hex. The `X-SSL-CERT` value.
    pub fn escaped_pem(&self) -> &str {
        &self.escaped_pem
    }

    /// The subject DN as nginx `$ssl_client_s_dn` (RFC 2253 style, OpenSSL escaping).
    pub fn subject_dn(&self) -> &str {
        &self.subject
    }

    /// The issuer DN as nginx `$ssl_client_i_dn`.
    pub fn issuer_dn(&self) -> &str {
        &self.issuer
    }

    /// The serial number as nginx `$ssl_client_serial`: upper-case hex without sign
    /// padding, `-` first for a (malformed) negative serial.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The SHA-256 fingerprint: gangway's `$ssl_client_fingerprint`.
    pub fn sha256_fingerprint(&self) -> Sha256Fingerprint {
        self.sha256
    }

    /// The SHA-1 fingerprint as 40 lower-case hex digits: what nginx's
    /// `$ssl_client_fingerprint` holds. For compatibility only; SHA-1 is not
    /// collision-resistant, so never use it to identify or pin a certificate.
    pub fn nginx_sha1_fingerprint(&self) -> &str {
        &self.sha1_hex
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of the validity period.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Start of validity as nginx `$ssl_client_v_start`: `Nov  4 09:05:00 2026 GMT`.
    pub fn not_before_text(&self) -> &str {
        &self.not_before_text
    }

    /// End of validity as nginx `$ssl_client_v_end`.
    pub fn not_after_text(&self) -> &str {
        &self.not_after_text
    }

    /// Whole days until the end of validity as nginx `$ssl_client_v_remain` (0 once
    /// expired).
    pub fn days_remaining(&self, now: SystemTime) -> u64 {
        self.not_after
            .duration_since(now)
            .map_or(0, |left| left.as_secs() / 86_400)
    }

    /// The subject alternative names, in certificate order.
    pub fn subject_alt_names(&self) -> &[SubjectAltName] {
        &self.subject_alt_names
    }

    pub(crate) fn is_self_issued(&self) -> bool {
        self.self_issued
    }

    pub(crate) fn raw_subject(&self) -> &[u8] {
        &self.raw_subject
    }

    pub(crate) fn raw_issuer(&self) -> &[u8] {
        &self.raw_issuer
    }
}

fn subject_alt_name(name: &GeneralName<'_>) -> SubjectAltName {
    match name {
        GeneralName::DNSName(name) => SubjectAltName::Dns((*name).to_owned()),
        GeneralName::RFC822Name(address) => SubjectAltName::Email((*address).to_owned()),
        GeneralName::URI(uri) => SubjectAltName::Uri((*uri).to_owned()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(*bytes).map_or(SubjectAltName::Other, |octets| {
                SubjectAltName::Ip(IpAddr::from(octets))
            }),
            16 => <[u8; 16]>::try_from(*bytes).map_or(SubjectAltName::Other, |octets| {
                SubjectAltName::Ip(IpAddr::from(octets))
            }),
            _ => SubjectAltName::Other,
        },
        GeneralName::DirectoryName(name) => SubjectAltName::DirectoryName(rfc2253(name)),
        _ => SubjectAltName::Other,
    }
}

/// nginx's `ngx_escape_uri(.., NGX_ESCAPE_URI_COMPONENT)` as used for
/// `$ssl_client_escaped_cert`: unreserved bytes stay, all others become `%XX`.
pub(crate) fn escape_uri_component(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3 / 2);
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// OpenSSL's `i2a_ASN1_INTEGER` of the serial: magnitude bytes in upper-case hex.
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    let negative = raw.first().is_some_and(|&first| first & 0x80 != 0);
    let magnitude: Vec<u8> = if negative {
        // Two's complement: invert and add one.
        let mut bytes: Vec<u8> = raw.iter().map(|byte| !byte).collect();
        for byte in bytes.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                break;
            }
        }
        bytes
    } else {
        raw.to_vec()
    };
    let start = magnitude.iter().take_while(|&&byte| byte == 0).count();
    let digits = &magnitude[start..];
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if digits.is_empty() {
        out.push_str("00");
    }
    for byte in digits {
        let _ = write!(out, "{byte:02X}");
    }
    out
}

fn unix_time(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// OpenSSL's `ASN1_TIME_print`: `Mmm dd hh:mm:ss yyyy GMT`, the day padded with a space.
pub(crate) fn asn1_time_print(seconds: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{} {:2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[usize::from(month - 1)],
        day,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        year
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month 1..=12, day 1..=31).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // month is 1..=12 and day 1..=31 by construction.
    (year, month as u8, day as u8)
}

/// Why a client certificate did not verify, with OpenSSL's wording (nginx puts
/// `FAILED:<reason>` in `$ssl_client_verify`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifyError {
    /// The validity period ended (`certificate has expired`).
    Expired,
    /// The validity period has not begun (`certificate is not yet valid`).
    NotYetValid,
    /// A self-signed certificate that is not a trusted CA (`self-signed certificate`).
    SelfSigned,
    /// The leaf's issuer is not in the CA bundle and was not sent
    /// (`unable to verify the first certificate`).
    UnknownIssuer,
    /// The client sent intermediates, but the chain does not reach the CA bundle
    /// (`unable to get local issuer certificate`).
    UntrustedChain,
    /// The client sent a chain up to a root that is not in the CA bundle
    /// (`self-signed certificate in certificate chain`).
    UntrustedRoot,
    /// The extended key usage does not allow client authentication
    /// (`unsuitable certificate purpose`).
    UnsuitablePurpose,
    /// A CRL lists the certificate or one of its issuers (`certificate revoked`).
    Revoked,
    /// CRLs are configured but none covers an issuer of the chain
    /// (`unable to get certificate CRL`).
    CrlMissing,
    /// A CRL is past its next update (`CRL has expired`).
    CrlExpired,
    /// A signature in the chain does not verify (`certificate signature failure`).
    BadSignature,
    /// The certificate does not parse (`certificate parse error`, gangway's wording).
    Malformed,
    /// Anything else, with rustls-webpki's description.
    Other(String),
}

impl VerifyError {
    /// The reason text: OpenSSL's `X509_verify_cert_error_string` where one applies.
    pub fn reason(&self) -> &str {
        match self {
            Self::Expired => "certificate has expired",
            Self::NotYetValid => "certificate is not yet valid",
            Self::SelfSigned => "self-signed certificate",
            Self::UnknownIssuer => "unable to verify the first certificate",
            Self::UntrustedChain => "unable to get local issuer certificate",
            Self::UntrustedRoot => "self-signed certificate in certificate chain",
            Self::UnsuitablePurpose => "unsuitable certificate purpose",
            Self::Revoked => "certificate revoked",
            Self::CrlMissing => "unable to get certificate CRL",
            Self::CrlExpired => "CRL has expired",
            Self::BadSignature => "certificate signature failure",
            Self::Malformed => "certificate parse error",
            Self::Other(text) => text,
        }
    }

    /// Whether the only fault is that the issuer is unknown or untrusted: the failures
    /// nginx's `optional_no_ca` (and gangway's `optional_unverified`) let through.
    pub fn is_untrusted_issuer(&self) -> bool {
        matches!(
            self,
            Self::SelfSigned | Self::UnknownIssuer | Self::UntrustedChain | Self::UntrustedRoot
        )
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The outcome of client-certificate verification; displays as nginx's
/// `$ssl_client_verify`: `SUCCESS`, `FAILED:<reason>` or `NONE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VerifyStatus {
    /// The chain verified against the CA bundle.
    Success,
    /// A certificate was sent and did not verify.
    Failed(VerifyError),
    /// No certificate was sent (or none was asked for).
    None,
}

impl fmt::Display for VerifyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success => f.write_str("SUCCESS"),
            Self::Failed(error) => write!(f, "FAILED:{error}"),
            Self::None => f.write_str("NONE"),
        }
    }
}

/// A connection's client identity: the verification outcome under the listener's policy,
/// and the certificate it was about.
///
/// The engine keeps one per TLS connection (from [`TlsSession::identity`]) and asks it:
///
/// - [`rejects_request`](Self::rejects_request): answer `400` instead of forwarding
///   (`optional_reject` with an invalid certificate, `optional_unverified` with a
///   certificate that fails for any reason other than its issuer);
/// - [`forwarded`](Self::forwarded): the certificate whose values fill the identity
///   variables (`X-SSL-CERT` and friends), or `None` to leave them empty;
/// - [`status`](Self::status): `$ssl_client_verify`, always available.
///
/// [`TlsSession::identity`]: crate::TlsSession::identity
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    policy: ClientCertPolicy,
    status: VerifyStatus,
    certificate: Option<Arc<PeerCertificate>>,
}

impl ClientIdentity {
    /// No certificate (`NONE`), e.g. for a plain-TCP listener.
    pub fn none(policy: ClientCertPolicy) -> Self {
        Self {
            policy,
            status: VerifyStatus::None,
            certificate: None,
        }
    }

    pub(crate) fn new(
        policy: ClientCertPolicy,
        status: VerifyStatus,
        certificate: Option<PeerCertificate>,
    ) -> Self {
        Self {
            policy,
            status,
            certificate: certificate.map(Arc::new),
        }
    }

    /// The policy the identity was established under.
    pub fn policy(&self) -> ClientCertPolicy {
        self.policy
    }

    /// `SUCCESS`, `FAILED:<reason>` or `NONE`.
    pub fn status(&self) -> &VerifyStatus {
        &self.status
    }

    /// The leaf certificate when it verified (`SUCCESS`).
    pub fn verified(&self) -> Option<&PeerCertificate> {
        match self.status {
            VerifyStatus::Success => self.certificate.as_deref(),
            VerifyStatus::Failed(_) | VerifyStatus::None => None,
        }
    }

    /// The certificate to fill the identity variables with: the verified one, or under
    /// `optional_unverified` one whose only fault is an unknown or untrusted issuer (the
    /// upstream then reads `FAILED:<reason>` from the verify status). `None` means the
    /// variables stay empty.
    pub fn forwarded(&self) -> Option<&PeerCertificate> {
        match (&self.status, self.policy) {
            (VerifyStatus::Success, _) => self.certificate.as_deref(),
            (VerifyStatus::Failed(error), ClientCertPolicy::OptionalUnverified)
                if error.is_untrusted_issuer() =>
            {
                self.certificate.as_deref()
            }
            (VerifyStatus::Failed(_) | VerifyStatus::None, _) => None,
        }
    }

    /// The certificate the client sent, whatever its status (for logs, never for
    /// identity variables); `None` also when it did not parse.
    pub fn presented(&self) -> Option<&PeerCertificate> {
        self.certificate.as_deref()
    }

    /// Whether the request must be refused with `400` instead of being forwarded.
    pub fn rejects_request(&self) -> bool {
        match (&self.status, self.policy) {
            (VerifyStatus::Success | VerifyStatus::None, _) => false,
            (VerifyStatus::Failed(_), ClientCertPolicy::None | ClientCertPolicy::Optional) => false,
            (VerifyStatus::Failed(error), ClientCertPolicy::OptionalUnverified) => {
                !error.is_untrusted_issuer()
            }
            (
                VerifyStatus::Failed(_),
                ClientCertPolicy::OptionalReject | ClientCertPolicy::Required,
            ) => true,
        }
    }
}

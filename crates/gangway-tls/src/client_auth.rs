//! Client-certificate policy: what the handshake asks for, how the chain is verified
//! (rustls-webpki, after the handshake), and what the engine does with the outcome.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use webpki::{
    CertRevocationList, ExpirationPolicy, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};

use crate::identity::{ClientIdentity, PeerCertificate, VerifyError, VerifyStatus};
use crate::pem::{PemSource, parse_crls};
use crate::reload::{ChangeTracker, Reload, ReloadReport, log_failure};
use crate::{Error, Sha256Fingerprint};

/// What a listener asks of clients' certificates and what happens to a request when the
/// certificate does not verify.
///
/// The handshake fails on a certificate only under [`Required`](Self::Required); under
/// every other policy the chain is verified after the handshake and the outcome is a
/// [`ClientIdentity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClientCertPolicy {
    /// No certificate is requested.
    #[default]
    None,
    /// A certificate is requested; the request is always forwarded, and the identity
    /// variables are filled only when the certificate verified. The IGEL default.
    Optional,
    /// As nginx `ssl_verify_client optional`: an invalid certificate gets `400`, a request
    /// without one is forwarded.
    OptionalReject,
    /// As nginx `optional_no_ca`: a certificate whose only fault is an unknown or
    /// untrusted issuer is passed on, the verify status saying `FAILED:<reason>`; one that
    /// is expired, revoked or for the wrong purpose gets `400`, as in nginx.
    OptionalUnverified,
    /// The handshake fails without a valid certificate.
    Required,
}

impl ClientCertPolicy {
    /// The configuration spelling: `none`, `optional`, `optional_reject`,
    /// `optional_unverified`, `required`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Optional => "optional",
            Self::OptionalReject => "optional_reject",
            Self::OptionalUnverified => "optional_unverified",
            Self::Required => "required",
        }
    }

    fn needs_ca(self) -> bool {
        match self {
            Self::Optional | Self::OptionalReject | Self::Required => true,
            Self::None | Self::OptionalUnverified => false,
        }
    }
}

impl fmt::Display for ClientCertPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClientCertPolicy {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        [
            Self::None,
            Self::Optional,
            Self::OptionalReject,
            Self::OptionalUnverified,
            Self::Required,
        ]
        .into_iter()
        .find(|policy| policy.as_str() == input)
        .ok_or_else(|| Error::UnknownPolicy {
            input: input.to_owned(),
        })
    }
}

/// The CA bundle client certificates must chain to, and the CRLs to check them against.
///
/// With CRLs configured, every certificate of the chain below the trust anchor must be
/// covered by a CRL of its issuer, and an expired CRL fails verification (as nginx's
/// `ssl_crl`, which sets OpenSSL's `CRL_CHECK | CRL_CHECK_ALL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCa {
    bundle: PemSource,
    crls: Vec<PemSource>,
}

impl ClientCa {
    /// Trust the CA certificates of `bundle` (PEM, one or more).
    pub fn new(bundle: PemSource) -> Self {
        Self {
            bundle,
            crls: Vec::new(),
        }
    }

    /// Also check revocation against the CRLs of `crl` (PEM, one or more).
    #[must_use]
    pub fn crl(mut self, crl: PemSource) -> Self {
        self.crls.push(crl);
        self
    }

    fn origins(&self) -> Vec<String> {
        let mut origins = vec![self.bundle.origin("client CA bundle")];
        origins.extend(self.crls.iter().map(|crl| crl.origin("CRL")));
        origins
    }

    fn load(&self) -> Result<Material, Error> {
        let origin = self.bundle.origin("client CA bundle");
        let certificates = self.bundle.certificates("client CA bundle")?;
        let mut anchors = Vec::with_capacity(certificates.len());
        let mut fingerprints = Vec::with_capacity(certificates.len());
        for (index, der) in certificates.iter().enumerate() {
            let anchor =
                webpki::anchor_from_trusted_cert(der).map_err(|source| Error::Malformed {
                    origin: origin.clone(),
                    what: format!("certificate {}", index + 1),
                    source: Box::new(source),
                })?;
            anchors.push(anchor.to_owned());
            fingerprints.push(Sha256Fingerprint::of(der.as_ref()));
        }
        let mut crls = Vec::new();
        for source in &self.crls {
            let origin = source.origin("CRL");
            for (index, der) in parse_crls(&source.bytes()?, &origin)?.iter().enumerate() {
                let crl = OwnedCertRevocationList::from_der(der.as_ref()).map_err(|source| {
                    Error::Malformed {
                        origin: origin.clone(),
                        what: format!("CRL {}", index + 1),
                        source: Box::new(source),
                    }
                })?;
                crls.push(CertRevocationList::from(crl));
                fingerprints.push(Sha256Fingerprint::of(der.as_ref()));
            }
        }
        Ok(Material::new(anchors, crls, fingerprints))
    }
}

#[derive(Debug)]
struct Material {
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    hints: Vec<DistinguishedName>,
    fingerprints: Vec<Sha256Fingerprint>,
}

impl Material {
    fn new(
        anchors: Vec<TrustAnchor<'static>>,
        crls: Vec<CertRevocationList<'static>>,
        fingerprints: Vec<Sha256Fingerprint>,
    ) -> Self {
        let hints = anchors
            .iter()
            .map(|anchor| DistinguishedName::in_sequence(anchor.subject.as_ref()))
            .collect();
        Self {
            anchors,
            crls,
            hints,
            fingerprints,
        }
    }

    fn empty() -> Self {
        Self::new(Vec::new(), Vec::new(), Vec::new())
    }
}

/// The CA names hinted in the `CertificateRequest`.
///
/// rustls borrows them from the verifier, so reloaded hints cannot replace the old ones in
/// place: each change of CA subjects appends a node, and the newest node is read. The list
/// grows only when the CA bundle's subjects change, and is freed with the verifier.
#[derive(Debug, Default)]
struct HintChain {
    hints: Vec<DistinguishedName>,
    next: OnceLock<Box<HintChain>>,
}

impl HintChain {
    fn latest(&self) -> &HintChain {
        let mut node = self;
        while let Some(next) = node.next.get() {
            node = next;
        }
        node
    }

    fn update(&self, hints: &[DistinguishedName]) {
        let latest = self.latest();
        let same = latest.hints.len() == hints.len()
            && latest
                .hints
                .iter()
                .zip(hints)
                .all(|(old, new)| old.as_ref() == new.as_ref());
        if !same {
            // Reloads are serialised by the change tracker, so `set` cannot race; if it
            // ever did, the other writer's hints are as new as these.
            let _ = latest.next.set(Box::new(HintChain {
                hints: hints.to_vec(),
                next: OnceLock::new(),
            }));
        }
    }
}

/// A listener's client-certificate verifier: the policy, the CA bundle and CRLs (swapped
/// in place on [`reload`](Reload::reload)), and the rustls
/// [`ClientCertVerifier`] that asks for certificates during the handshake.
///
/// During the handshake it checks only that the client holds the key of the certificate it
/// sent (handshake signatures), except under [`ClientCertPolicy::Required`], where the
/// chain must verify too. After the handshake, [`identify`](Self::identify) verifies the
/// chain with rustls-webpki against the current CA bundle (validity period, path building,
/// the client-auth extended key usage, CRLs when configured) and returns the
/// [`ClientIdentity`].
#[derive(Debug)]
pub struct ClientAuth {
    policy: ClientCertPolicy,
    ca: Option<ClientCa>,
    provider: Arc<CryptoProvider>,
    material: ArcSwap<Material>,
    hints: HintChain,
    tracker: ChangeTracker,
}

impl ClientAuth {
    /// A verifier for `policy`. `ca` is required by `optional`, `optional_reject` and
    /// `required`; `optional_unverified` uses it when given (the status then tells whether
    /// the certificate verified), `none` ignores it.
    pub fn new(
        policy: ClientCertPolicy,
        ca: Option<ClientCa>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, Error> {
        if policy.needs_ca() && ca.is_none() {
            return Err(Error::MissingClientCa {
                policy: policy.as_str(),
            });
        }
        let ca = ca.filter(|_| policy != ClientCertPolicy::None);
        let material = match &ca {
            Some(ca) => ca.load()?,
            None => Material::empty(),
        };
        let hints = HintChain {
            hints: material.hints.clone(),
            next: OnceLock::new(),
        };
        let auth = Self {
            policy,
            ca,
            provider,
            material: ArcSwap::from_pointee(material),
            hints,
            tracker: ChangeTracker::default(),
        };
        auth.tracker.record(&auth.watched_files());
        Ok(auth)
    }

    /// No client certificates: the policy `none`.
    pub fn none(provider: Arc<CryptoProvider>) -> Self {
        Self {
            policy: ClientCertPolicy::None,
            ca: None,
            provider,
            material: ArcSwap::from_pointee(Material::empty()),
            hints: HintChain::default(),
            tracker: ChangeTracker::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> ClientCertPolicy {
        self.policy
    }

    /// The client identity of a finished handshake, from
    /// `ServerConnection::peer_certificates()` (leaf first), verified now.
    ///
    /// A certificate that does not verify is logged (`info`, with the reason, subject,
    /// issuer and SHA-256 fingerprint); whether the request is forwarded is for the engine
    /// to ask the identity ([`ClientIdentity::rejects_request`]).
    pub fn identify(&self, peer_certificates: Option<&[CertificateDer<'_>]>) -> ClientIdentity {
        self.identify_at(peer_certificates, UnixTime::now())
    }

    /// [`identify`](Self::identify) at a given time.
    pub fn identify_at(
        &self,
        peer_certificates: Option<&[CertificateDer<'_>]>,
        now: UnixTime,
    ) -> ClientIdentity {
        let Some((leaf, intermediates)) = peer_certificates.and_then(|chain| chain.split_first())
        else {
            return ClientIdentity::none(self.policy);
        };
        if self.policy == ClientCertPolicy::None {
            return ClientIdentity::none(self.policy);
        }
        let certificate = PeerCertificate::from_der(leaf).ok();
        let status = match self.verify(leaf, intermediates, now) {
            Ok(()) => VerifyStatus::Success,
            Err(error) => {
                let error = classify(error, certificate.as_ref(), intermediates);
                tracing::info!(
                    policy = %self.policy,
                    reason = error.reason(),
                    subject = certificate.as_ref().map(PeerCertificate::subject_dn),
                    issuer = certificate.as_ref().map(PeerCertificate::issuer_dn),
                    sha256 = %Sha256Fingerprint::of(leaf.as_ref()),
                    "client certificate did not verify"
                );
                VerifyStatus::Failed(error)
            }
        };
        ClientIdentity::new(self.policy, status, certificate)
    }

    fn verify(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), webpki::Error> {
        let material = self.material.load();
        let end_entity = webpki::EndEntityCert::try_from(leaf)?;
        let crls: Vec<&CertRevocationList<'_>> = material.crls.iter().collect();
        let revocation = RevocationOptionsBuilder::new(&crls).ok().map(|builder| {
            builder
                .with_depth(RevocationCheckDepth::Chain)
                .with_status_policy(UnknownStatusPolicy::Deny)
                .with_expiration_policy(ExpirationPolicy::Enforce)
                .build()
        });
        end_entity.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &material.anchors,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            revocation,
            None,
        )?;
        Ok(())
    }

    fn swap(&self) -> Result<ReloadReport, Error> {
        let Some(ca) = &self.ca else {
            return Ok(ReloadReport::default());
        };
        let material = ca.load()?;
        let origins = ca.origins();
        let changed = if material.fingerprints != self.material.load().fingerprints {
            origins.clone()
        } else {
            Vec::new()
        };
        self.hints.update(&material.hints);
        self.material.store(Arc::new(material));
        Ok(ReloadReport {
            reloaded: origins,
            changed,
        })
    }
}

impl Reload for ClientAuth {
    fn reload(&self) -> Result<ReloadReport, Error> {
        self.tracker.run(&self.watched_files(), || {
            let result = self.swap();
            match &result {
                Ok(report) if !report.changed.is_empty() => {
                    tracing::info!(files = ?report.changed, "reloaded client CA bundle and CRLs");
                }
                Ok(_) => {}
                Err(error) => log_failure("client CA bundle and CRLs", error),
            }
            result
        })
    }

    fn reload_if_changed(&self) -> Result<Option<ReloadReport>, Error> {
        if self.tracker.unchanged(&self.watched_files()) {
            return Ok(None);
        }
        self.reload().map(Some)
    }

    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        let Some(ca) = &self.ca else {
            return Vec::new();
        };
        std::iter::once(&ca.bundle)
            .chain(&ca.crls)
            .filter_map(PemSource::path)
            .map(ToOwned::to_owned)
            .collect()
    }
}

impl ClientCertVerifier for ClientAuth {
    fn offer_client_auth(&self) -> bool {
        self.policy != ClientCertPolicy::None
    }

    fn client_auth_mandatory(&self) -> bool {
        self.policy == ClientCertPolicy::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints.latest().hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.policy == ClientCertPolicy::Required {
            self.verify(end_entity, intermediates, now)
                .map_err(|error| {
                    let certificate = PeerCertificate::from_der(end_entity).ok();
                    let classified = classify(error.clone(), certificate.as_ref(), intermediates);
                    tracing::info!(
                        reason = classified.reason(),
                        subject = certificate.as_ref().map(PeerCertificate::subject_dn),
                        sha256 = %Sha256Fingerprint::of(end_entity.as_ref()),
                        "client certificate refused in the handshake (policy required)"
                    );
                    rustls::Error::InvalidCertificate(certificate_error(error))
                })?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls alert-level error for a chain refused in the handshake.
fn certificate_error(error: webpki::Error) -> CertificateError {
    use webpki::Error as E;
    #[allow(deprecated)] // `RequiredEkuNotFound` is still produced by older paths.
    match error {
        E::CertExpired { .. } => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::CertRevoked => CertificateError::Revoked,
        E::UnknownRevocationStatus => CertificateError::UnknownRevocationStatus,
        E::CrlExpired { .. } => CertificateError::ExpiredRevocationList,
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
            CertificateError::InvalidPurpose
        }
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        E::BadDer | E::BadDerTime => CertificateError::BadEncoding,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    }
}

/// Maps a webpki error to OpenSSL's vocabulary, telling the issuer cases apart as
/// OpenSSL does (self-signed leaf, leaf alone, incomplete chain, untrusted root).
pub(crate) fn classify(
    error: webpki::Error,
    leaf: Option<&PeerCertificate>,
    intermediates: &[CertificateDer<'_>],
) -> VerifyError {
    use webpki::Error as E;
    #[allow(deprecated)] // `RequiredEkuNotFound` is still produced by older paths.
    match error {
        E::CertExpired { .. } => VerifyError::Expired,
        E::CertNotValidYet { .. } => VerifyError::NotYetValid,
        E::UnknownIssuer => issuer_error(leaf, intermediates),
        // webpki refuses a CA certificate as a leaf before looking for its issuer; a
        // self-signed one (what `openssl req -x509` makes) is OpenSSL's self-signed case.
        E::CaUsedAsEndEntity if leaf.is_some_and(PeerCertificate::is_self_issued) => {
            VerifyError::SelfSigned
        }
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => VerifyError::UnsuitablePurpose,
        E::CertRevoked => VerifyError::Revoked,
        E::UnknownRevocationStatus => VerifyError::CrlMissing,
        E::CrlExpired { .. } => VerifyError::CrlExpired,
        E::InvalidSignatureForPublicKey
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => VerifyError::BadSignature,
        E::BadDer | E::BadDerTime | E::TrailingData(_) => VerifyError::Malformed,
        other => VerifyError::Other(other.to_string()),
    }
}

fn issuer_error(
    leaf: Option<&PeerCertificate>,
    intermediates: &[CertificateDer<'_>],
) -> VerifyError {
    let Some(leaf) = leaf else {
        return VerifyError::UnknownIssuer;
    };
    if leaf.is_self_issued() {
        return VerifyError::SelfSigned;
    }
    let parsed: Vec<PeerCertificate> = intermediates
        .iter()
        .filter_map(|der| PeerCertificate::from_der(der).ok())
        .collect();
    let issuer_of = |certificate: &PeerCertificate| {
        parsed
            .iter()
            .find(|candidate| candidate.raw_subject() == certificate.raw_issuer())
    };
    let Some(mut current) = issuer_of(leaf) else {
        return VerifyError::UnknownIssuer;
    };
    for _ in 0..parsed.len() {
        if current.is_self_issued() {
            return VerifyError::UntrustedRoot;
        }
        match issuer_of(current) {
            Some(next) => current = next,
            None => break,
        }
    }
    VerifyError::UntrustedChain
}

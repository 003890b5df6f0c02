//! Client keys that never leave their hardware: the handshake's signature is delegated to a
//! function of the application (PKCS#11 token, TPM, secure element). rustls sees a
//! `SigningKey` whose schemes follow the certificate's public key and whose `Signer` calls that
//! function.

use crate::core::error::{Error, Result};
use std::fmt;
use std::sync::Arc;
use tokio_rustls::rustls::{
    self,
    pki_types::{CertificateDer, SubjectPublicKeyInfoDer},
    sign::{Signer, SigningKey},
    SignatureAlgorithm, SignatureScheme as RustlsScheme,
};

/// A TLS signature scheme the signing function is asked for. `message` is the data to sign,
/// not its hash: the scheme names the hash to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    EcdsaP521Sha512,
    Ed25519,
}

impl SignatureScheme {
    fn rustls(self) -> RustlsScheme {
        use SignatureScheme as S;
        match self {
            S::RsaPkcs1Sha256 => RustlsScheme::RSA_PKCS1_SHA256,
            S::RsaPkcs1Sha384 => RustlsScheme::RSA_PKCS1_SHA384,
            S::RsaPkcs1Sha512 => RustlsScheme::RSA_PKCS1_SHA512,
            S::RsaPssSha256 => RustlsScheme::RSA_PSS_SHA256,
            S::RsaPssSha384 => RustlsScheme::RSA_PSS_SHA384,
            S::RsaPssSha512 => RustlsScheme::RSA_PSS_SHA512,
            S::EcdsaP256Sha256 => RustlsScheme::ECDSA_NISTP256_SHA256,
            S::EcdsaP384Sha384 => RustlsScheme::ECDSA_NISTP384_SHA384,
            S::EcdsaP521Sha512 => RustlsScheme::ECDSA_NISTP521_SHA512,
            S::Ed25519 => RustlsScheme::ED25519,
        }
    }
}

/// The application's signing function: the signature of `message` with `scheme` (RSA as the
/// modulus-sized integer, ECDSA as a DER `ECDSA-Sig-Value`, Ed25519 as 64 bytes), or why not.
pub type SignFn =
    Arc<dyn Fn(SignatureScheme, &[u8]) -> std::result::Result<Vec<u8>, String> + Send + Sync>;

/// What the certificate's public key is, hence which schemes the token can sign with, in the
/// order we prefer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Ed25519,
}

impl KeyKind {
    fn schemes(self) -> &'static [SignatureScheme] {
        use SignatureScheme as S;
        match self {
            KeyKind::Rsa => &[
                S::RsaPssSha256,
                S::RsaPssSha384,
                S::RsaPssSha512,
                S::RsaPkcs1Sha256,
                S::RsaPkcs1Sha384,
                S::RsaPkcs1Sha512,
            ],
            KeyKind::EcdsaP256 => &[S::EcdsaP256Sha256],
            KeyKind::EcdsaP384 => &[S::EcdsaP384Sha384],
            KeyKind::EcdsaP521 => &[S::EcdsaP521Sha512],
            KeyKind::Ed25519 => &[S::Ed25519],
        }
    }

    fn algorithm(self) -> SignatureAlgorithm {
        match self {
            KeyKind::Rsa => SignatureAlgorithm::RSA,
            KeyKind::Ed25519 => SignatureAlgorithm::ED25519,
            _ => SignatureAlgorithm::ECDSA,
        }
    }
}

/// The key of the chain's first certificate, signed for by the application.
pub struct ExternalKey {
    kind: KeyKind,
    public_key: Vec<u8>,
    sign: SignFn,
}

impl fmt::Debug for ExternalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl ExternalKey {
    /// The key of `certificate` (the chain's leaf), signed for by `sign`.
    pub fn new(certificate: &CertificateDer<'_>, sign: SignFn) -> Result<ExternalKey> {
        use x509_cert::der::{Decode, Encode};
        let cert = x509_cert::Certificate::from_der(certificate.as_ref())
            .map_err(|e| Error::TlsConfig(format!("the client certificate is malformed: {e}")))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let oid = spki.algorithm.oid.to_string();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
            .map(|oid| oid.to_string());
        let kind = match (oid.as_str(), curve.as_deref()) {
            ("1.2.840.113549.1.1.1", _) => KeyKind::Rsa,
            ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => KeyKind::EcdsaP256,
            ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => KeyKind::EcdsaP384,
            ("1.2.840.10045.2.1", Some("1.3.132.0.35")) => KeyKind::EcdsaP521,
            ("1.3.101.112", _) => KeyKind::Ed25519,
            (other, curve) => {
                return Err(Error::TlsConfig(format!(
                    "the client certificate's public key (algorithm {other}, parameters {curve:?}) \
                     is not RSA, ECDSA P-256/P-384/P-521 or Ed25519"
                )))
            }
        };
        let public_key = spki
            .to_der()
            .map_err(|e| Error::TlsConfig(format!("the client certificate's public key: {e}")))?;
        Ok(ExternalKey {
            kind,
            public_key,
            sign,
        })
    }
}

impl SigningKey for ExternalKey {
    fn choose_scheme(&self, offered: &[RustlsScheme]) -> Option<Box<dyn Signer>> {
        self.kind
            .schemes()
            .iter()
            .find(|scheme| offered.contains(&scheme.rustls()))
            .map(|&scheme| {
                Box::new(ExternalSigner {
                    scheme,
                    sign: self.sign.clone(),
                }) as Box<dyn Signer>
            })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.public_key.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.kind.algorithm()
    }
}

struct ExternalSigner {
    scheme: SignatureScheme,
    sign: SignFn,
}

impl fmt::Debug for ExternalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalSigner")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

/// The signing function failed; carried through rustls as `Error::Other` so that the
/// handshake's failure is named by its cause.
#[derive(Debug)]
pub struct SignerFailed(pub String);

impl fmt::Display for SignerFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SignerFailed {}

impl Signer for ExternalSigner {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rustls::Error> {
        // A token may take a while: the handshake runs on a thread of its own
        // (`tls::Connector`), not on the I/O thread.
        match (self.sign)(self.scheme, message) {
            Ok(signature) if signature.is_empty() => Err(failed(
                "the signing callback returned an empty signature".into(),
            )),
            Ok(signature) => Ok(signature),
            Err(reason) => Err(failed(reason)),
        }
    }

    fn scheme(&self) -> RustlsScheme {
        self.scheme.rustls()
    }
}

fn failed(reason: String) -> rustls::Error {
    rustls::Error::Other(rustls::OtherError(Arc::new(SignerFailed(reason))))
}

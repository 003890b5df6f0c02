//! TLS for broker connections, on rustls: builds the client configuration from the options
//! (CA file or system roots, client certificate with an optionally encrypted key, hostname
//! verification, minimum version) and names the cause of a failed handshake.

use crate::core::error::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::rustls::{
    self,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    client::WebPkiServerVerifier,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime},
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use tokio_rustls::TlsConnector;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub key_password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of trusted CAs; `None` uses the system's trust store.
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<ClientCertificate>,
    pub verify_hostname: bool,
    /// Accept any certificate: for tests only.
    pub insecure: bool,
    pub min_version: TlsVersion,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            ca_file: None,
            client_cert: None,
            verify_hostname: true,
            insecure: false,
            min_version: TlsVersion::V1_2,
        }
    }
}

pub fn connector(options: &TlsOptions) -> Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match options.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let verifier = server_verifier(options, provider.clone())?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::TlsConfig(format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &options.client_cert {
        Some(cert) => {
            let (chain, key) = load_client_certificate(cert)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::TlsConfig(format!(
                    "client certificate and key do not fit together: {e}"
                ))
            })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string())
        .map_err(|e| Error::TlsConfig(format!("'{host}' is not a valid TLS server name: {e}")))
}

fn server_verifier(
    options: &TlsOptions,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>> {
    if options.insecure {
        return Ok(Arc::new(AcceptAnyCertificate(provider)));
    }
    let roots = root_store(options)?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| Error::TlsConfig(format!("cannot build certificate verifier: {e}")))?;
    if options.verify_hostname {
        Ok(webpki)
    } else {
        Ok(Arc::new(IgnoreHostname(webpki)))
    }
}

fn root_store(options: &TlsOptions) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            let certs = read_certificates(path, "CA file")?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::TlsConfig(format!(
                    "CA file '{}' holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(loaded.certs);
            if roots.is_empty() {
                return Err(Error::TlsConfig(
                    "no CA file given and the system trust store is empty".into(),
                ));
            }
        }
    }
    Ok(roots)
}

fn read_certificates(path: &std::path::Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::TlsConfig(format!("cannot read {what} '{}': {e}", path.display())))?;
    let certs: std::result::Result<Vec<_>, _> =
        rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| {
        Error::TlsConfig(format!("{what} '{}' is not valid PEM: {e}", path.display()))
    })?;
    if certs.is_empty() {
        return Err(Error::TlsConfig(format!(
            "{what} '{}' holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_client_certificate(
    cert: &ClientCertificate,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = read_certificates(&cert.cert_file, "client certificate")?;
    let key_path = cert.key_file.display().to_string();
    let pem = std::fs::read_to_string(&cert.key_file)
        .map_err(|e| Error::TlsConfig(format!("cannot read client key '{key_path}': {e}")))?;
    let key = if pem.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        decrypt_pkcs8(&pem, cert.key_password.as_deref(), &key_path)?
    } else {
        if pem.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(Error::TlsConfig(format!(
                "client key '{key_path}' uses legacy OpenSSL encryption; convert it to encrypted PKCS#8 (openssl pkcs8 -topk8)"
            )));
        }
        rustls_pemfile::private_key(&mut pem.as_bytes())
            .map_err(|e| {
                Error::TlsConfig(format!("client key '{key_path}' is not valid PEM: {e}"))
            })?
            .ok_or_else(|| {
                Error::TlsConfig(format!("client key '{key_path}' holds no private key"))
            })?
    };
    Ok((chain, key))
}

fn decrypt_pkcs8(
    pem: &str,
    password: Option<&str>,
    key_path: &str,
) -> Result<PrivateKeyDer<'static>> {
    use pkcs8::der::Decode;
    let password = password.ok_or_else(|| {
        Error::TlsConfig(format!(
            "client key '{key_path}' is encrypted but no password was given"
        ))
    })?;
    let (_label, document) = pkcs8::SecretDocument::from_pem(pem)
        .map_err(|e| Error::TlsConfig(format!("client key '{key_path}' is not valid PEM: {e}")))?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::from_der(document.as_bytes())
        .map_err(|e| Error::TlsConfig(format!("client key '{key_path}' is malformed: {e}")))?;
    let decrypted = encrypted.decrypt(password).map_err(|_| {
        Error::TlsConfig(format!(
            "cannot decrypt client key '{key_path}': wrong password or unsupported cipher"
        ))
    })?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        decrypted.as_bytes().to_vec(),
    )))
}

/// Names the cause of a failed TLS handshake or of an alert the broker sent afterwards.
pub fn classify(error: &rustls::Error, host: &str) -> Error {
    use rustls::Error as E;
    match error {
        E::InvalidCertificate(CertificateError::UnknownIssuer) => Error::TlsUnknownIssuer(format!(
            "certificate verify failed: unknown issuer (the certificate of '{host}' is not signed by a trusted CA)"
        )),
        E::InvalidCertificate(CertificateError::NotValidForName)
        | E::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            Error::TlsHostnameMismatch(format!(
                "certificate verify failed: hostname mismatch (the certificate is not valid for '{host}')"
            ))
        }
        E::InvalidCertificate(CertificateError::Expired)
        | E::InvalidCertificate(CertificateError::ExpiredContext { .. }) => Error::TlsCertExpired(
            format!("certificate verify failed: the certificate of '{host}' has expired"),
        ),
        E::InvalidCertificate(CertificateError::NotValidYet)
        | E::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => {
            Error::TlsCertExpired(format!(
                "certificate verify failed: the certificate of '{host}' is not valid yet"
            ))
        }
        E::InvalidCertificate(other) => {
            Error::Tls(format!("certificate verify failed: {other:?}"))
        }
        E::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::HandshakeFailure),
        ) => Error::TlsClientCertRejected(format!(
            "broker rejected the TLS client certificate (alert: {alert:?}); it requires a valid client certificate"
        )),
        other => Error::Tls(format!("TLS handshake with '{host}' failed: {other}")),
    }
}

/// Classifies an I/O error that may wrap a rustls error.
pub fn classify_io(error: &std::io::Error, host: &str) -> Option<Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(|tls| classify(tls, host))
}

/// Verifies the chain but not the name: for brokers reached by an address their certificate
/// does not list, when the user turned hostname verification off.
#[derive(Debug)]
struct IgnoreHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            })) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The explicit insecure switch: accepts any certificate (signatures are still checked).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

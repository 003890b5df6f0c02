//! TLS for broker connections, on rustls: builds the client configuration from the options
//! (trusted CAs from a file, memory or the system; a client certificate with its key from
//! files, memory or an application's signing callback; CRLs; ALPN; an SNI override; hostname
//! verification; minimum version) and names the cause of a failed handshake. Decoding of
//! certificates, CRLs and keys is in `keys`, the signing callback's key in `signer`.

pub mod keys;
pub mod signer;

use crate::core::error::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{
    self,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    client::WebPkiServerVerifier,
    crypto::CryptoProvider,
    pki_types::{
        CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
    },
    sign::{CertifiedKey, SigningKey, SingleCertAndKey},
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use tokio_rustls::TlsConnector;

/// Client certificate and key files, read when the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub key_password: Option<String>,
}

/// Who the client is in the handshake.
#[derive(Clone)]
pub enum ClientIdentity {
    /// Files, decoded when the client connects.
    Files(ClientCertificate),
    /// A chain and a key decoded already (from memory, or behind a signing callback).
    Loaded {
        chain: Vec<CertificateDer<'static>>,
        key: Arc<dyn SigningKey>,
        /// The key is the application's signing callback, which may block.
        external: bool,
    },
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientIdentity::Files(files) => f.debug_tuple("Files").field(files).finish(),
            ClientIdentity::Loaded {
                chain,
                key,
                external,
            } => f
                .debug_struct("Loaded")
                .field("chain_len", &chain.len())
                .field("key", key)
                .field("external", external)
                .finish(),
        }
    }
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ClientIdentity::Files(a), ClientIdentity::Files(b)) => a == b,
            (
                ClientIdentity::Loaded { chain, key, .. },
                ClientIdentity::Loaded {
                    chain: other_chain,
                    key: other_key,
                    ..
                },
            ) => chain == other_chain && Arc::ptr_eq(key, other_key),
            _ => false,
        }
    }
}

impl Eq for ClientIdentity {}

/// Trusted CAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustSource {
    /// A PEM (or DER) file, read when the client connects.
    File(PathBuf),
    /// Certificates decoded already (from memory).
    Certificates(Vec<CertificateDer<'static>>),
}

/// Certificate revocation lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlSource {
    File(PathBuf),
    Lists(Vec<CertificateRevocationListDer<'static>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Trusted CAs; `None` uses the system's trust store.
    pub ca: Option<TrustSource>,
    pub client_identity: Option<ClientIdentity>,
    pub verify_hostname: bool,
    /// Accept any certificate: for tests only.
    pub insecure: bool,
    pub min_version: TlsVersion,
    /// ALPN protocol ids offered in the ClientHello, in order of preference.
    pub alpn: Vec<Vec<u8>>,
    /// The name sent as SNI and verified in the certificate instead of the broker's host.
    pub server_name: Option<String>,
    /// CRLs the server's certificate chain is checked against.
    pub crls: Vec<CrlSource>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            ca: None,
            client_identity: None,
            verify_hostname: true,
            insecure: false,
            min_version: TlsVersion::V1_2,
            alpn: Vec::new(),
            server_name: None,
            crls: Vec::new(),
        }
    }
}

/// The handshake side of TLS, built once per client from its options.
#[derive(Clone)]
pub struct Connector {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
    /// The handshake calls the application's signing callback: it runs on a thread of its
    /// own, so that a slow token never stalls the I/O thread (every other connection).
    off_thread: bool,
}

impl Connector {
    /// The TLS handshake over `io` with the broker reached as `host`; a failure is named by
    /// its cause.
    pub async fn connect<IO>(
        &self,
        host: &str,
        io: IO,
        deadline: tokio::time::Instant,
    ) -> Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => server_name(host)?,
        };
        let shown = self
            .server_name
            .as_ref()
            .map_or_else(|| host.to_string(), |n| n.to_str().into_owned());
        let handshake = if self.off_thread {
            let connector = self.connector.clone();
            let runtime = tokio::runtime::Handle::current();
            // The runtime's thread keeps driving the socket; this thread only polls the
            // handshake (and waits in the callback). Bounded by the connect deadline.
            tokio::task::spawn_blocking(move || {
                runtime.block_on(async move {
                    tokio::time::timeout_at(deadline, connector.connect(name, io))
                        .await
                        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                })
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        } else {
            self.connector.connect(name, io).await
        };
        handshake.map_err(|e| {
            classify_io(&e, &shown)
                .unwrap_or_else(|| Error::Tls(format!("TLS handshake with '{shown}' failed: {e}")))
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn connector(options: &TlsOptions) -> Result<Connector> {
    let provider = provider();
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
    let mut config = match &options.client_identity {
        Some(ClientIdentity::Files(files)) => {
            let (chain, key) = load_client_certificate(files)?;
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
                chain, key,
            ))))
        }
        Some(ClientIdentity::Loaded { chain, key, .. }) => {
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
                chain.clone(),
                key.clone(),
            ))))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = options.alpn.clone();
    let server_name = options
        .server_name
        .as_deref()
        .map(server_name)
        .transpose()?;
    Ok(Connector {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
        off_thread: matches!(
            options.client_identity,
            Some(ClientIdentity::Loaded { external: true, .. })
        ),
    })
}

pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string())
        .map_err(|e| Error::TlsConfig(format!("'{host}' is not a valid TLS server name: {e}")))
}

/// A chain and its private key as rustls uses them; checks that they belong together.
pub fn client_identity(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ClientIdentity> {
    let key = load_signing_key(key)?;
    check_key_fits(&chain, &key)?;
    Ok(ClientIdentity::Loaded {
        chain,
        key,
        external: false,
    })
}

/// A chain whose key only the application's signing function can use.
pub fn external_identity(
    chain: Vec<CertificateDer<'static>>,
    sign: signer::SignFn,
) -> Result<ClientIdentity> {
    let leaf = chain
        .first()
        .ok_or_else(|| Error::TlsConfig("the client certificate chain is empty".into()))?;
    let key: Arc<dyn SigningKey> = Arc::new(signer::ExternalKey::new(leaf, sign)?);
    Ok(ClientIdentity::Loaded {
        chain,
        key,
        external: true,
    })
}

fn load_signing_key(key: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>> {
    provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| {
            Error::TlsConfig(format!(
                "the client key is malformed or of an unsupported type (RSA, ECDSA P-256/P-384 and Ed25519 are supported): {e}"
            ))
        })
}

fn check_key_fits(chain: &[CertificateDer<'static>], key: &Arc<dyn SigningKey>) -> Result<()> {
    match CertifiedKey::new(chain.to_vec(), key.clone()).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(e) => Err(Error::TlsConfig(format!(
            "client certificate and key do not fit together: {e}"
        ))),
    }
}

fn server_verifier(
    options: &TlsOptions,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>> {
    if options.insecure {
        return Ok(Arc::new(AcceptAnyCertificate(provider)));
    }
    let roots = root_store(options)?;
    let mut crls = Vec::new();
    for source in &options.crls {
        match source {
            CrlSource::File(path) => crls.extend(keys::revocation_lists(
                &read_file(path, "CRL file")?,
                &format!("CRL file '{}'", path.display()),
            )?),
            CrlSource::Lists(lists) => crls.extend(lists.iter().cloned()),
        }
    }
    let mut builder = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider);
    if !crls.is_empty() {
        // A chain certificate whose issuer published no CRL here is not refused: the lists
        // given are what the user knows to be revoked.
        builder = builder.with_crls(crls).allow_unknown_revocation_status();
    }
    let webpki = builder
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
    match &options.ca {
        Some(source) => {
            let (certs, what) = match source {
                TrustSource::File(path) => {
                    let what = format!("CA file '{}'", path.display());
                    (
                        keys::certificates(&read_file(path, "CA file")?, &what)?,
                        what,
                    )
                }
                TrustSource::Certificates(certs) => (certs.clone(), "CA data".to_string()),
            };
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::TlsConfig(format!(
                    "{what} holds no usable certificate"
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

fn read_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::TlsConfig(format!("cannot read {what} '{}': {e}", path.display())))
}

fn load_client_certificate(
    files: &ClientCertificate,
) -> Result<(Vec<CertificateDer<'static>>, Arc<dyn SigningKey>)> {
    let cert_what = format!("client certificate '{}'", files.cert_file.display());
    let chain = keys::certificates(
        &read_file(&files.cert_file, "client certificate")?,
        &cert_what,
    )?;
    let key_what = format!("client key '{}'", files.key_file.display());
    let key = keys::private_key(
        &read_file(&files.key_file, "client key")?,
        files.key_password.as_deref(),
        &key_what,
    )?;
    let key = load_signing_key(key)?;
    check_key_fits(&chain, &key)?;
    Ok((chain, key))
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
        E::InvalidCertificate(CertificateError::Revoked) => Error::TlsCertRevoked(format!(
            "certificate verify failed: the certificate of '{host}' (or of its chain) is revoked by the configured CRL"
        )),
        E::InvalidCertificate(other) => {
            Error::Tls(format!("certificate verify failed: {other:?}"))
        }
        E::AlertReceived(AlertDescription::CertificateRevoked) => {
            Error::TlsClientCertRevoked(format!(
                "broker '{host}' refused the TLS client certificate as revoked (alert: certificate_revoked)"
            ))
        }
        E::AlertReceived(AlertDescription::NoApplicationProtocol) => Error::Tls(format!(
            "broker '{host}' accepts none of the offered ALPN protocols (alert: no_application_protocol)"
        )),
        E::Other(other) if other.0.downcast_ref::<signer::SignerFailed>().is_some() => {
            Error::TlsSignerFailed(format!(
                "TLS handshake with '{host}' failed: the signing callback failed: {}",
                other.0
            ))
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

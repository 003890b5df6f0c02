//! TLS options from memory and beyond files, at the C boundary: CA certificates, client
//! certificate and key as buffers, a signing callback for keys that stay in hardware, ALPN,
//! an SNI override and certificate revocation lists.

use crate::ffi::boundary::{bytes, c_str, optional_c_str};
use crate::ffi::client::UserData;
use crate::ffi::options::{eq1_mqtt_options, with_options};
use crate::ffi::status::eq1_status;
use crate::mqtt::options::{SignFn, SignatureScheme};
use crate::Error;
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// The signature a signing callback is asked for (`eq1_tls_sign_cb`). The values are the TLS
/// SignatureScheme code points (IANA). `data` is the message to sign, not its hash: the scheme
/// names the hash to apply (PKCS#11: `CKM_SHA256_RSA_PKCS`, `CKM_SHA256_RSA_PKCS_PSS`,
/// `CKM_ECDSA_SHA256`...). RSA-PSS uses MGF1 with the same hash and a salt as long as the hash.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum eq1_tls_signature_scheme {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256 = 0x0401,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384 = 0x0501,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512 = 0x0601,
    /// RSASSA-PSS with SHA-256 (rsa_pss_rsae_sha256).
    RsaPssSha256 = 0x0804,
    /// RSASSA-PSS with SHA-384.
    RsaPssSha384 = 0x0805,
    /// RSASSA-PSS with SHA-512.
    RsaPssSha512 = 0x0806,
    /// ECDSA on P-256 with SHA-256; the signature is a DER `ECDSA-Sig-Value` (a PKCS#11
    /// token's raw r||s must be DER-encoded).
    EcdsaP256Sha256 = 0x0403,
    /// ECDSA on P-384 with SHA-384, DER-encoded.
    EcdsaP384Sha384 = 0x0503,
    /// ECDSA on P-521 with SHA-512, DER-encoded.
    EcdsaP521Sha512 = 0x0603,
    /// Ed25519 (64-byte signature).
    Ed25519 = 0x0807,
}

impl From<SignatureScheme> for eq1_tls_signature_scheme {
    fn from(scheme: SignatureScheme) -> Self {
        use eq1_tls_signature_scheme as C;
        use SignatureScheme as S;
        match scheme {
            S::RsaPkcs1Sha256 => C::RsaPkcs1Sha256,
            S::RsaPkcs1Sha384 => C::RsaPkcs1Sha384,
            S::RsaPkcs1Sha512 => C::RsaPkcs1Sha512,
            S::RsaPssSha256 => C::RsaPssSha256,
            S::RsaPssSha384 => C::RsaPssSha384,
            S::RsaPssSha512 => C::RsaPssSha512,
            S::EcdsaP256Sha256 => C::EcdsaP256Sha256,
            S::EcdsaP384Sha384 => C::EcdsaP384Sha384,
            S::EcdsaP521Sha512 => C::EcdsaP521Sha512,
            S::Ed25519 => C::Ed25519,
        }
    }
}

/// The size of the buffer a signing callback writes its signature into: enough for RSA keys
/// up to 16384 bits.
pub const EQ1_TLS_SIGNATURE_CAPACITY: usize = 2048;

/// Signs one TLS handshake with a key the library never sees (PKCS#11 token, TPM, secure
/// element). Write the signature of `data` (`data_len` bytes) with `scheme` into `signature`
/// (`signature_capacity` bytes, `EQ1_TLS_SIGNATURE_CAPACITY`), set `*signature_len` and return
/// true; return false when it cannot sign (the handshake then fails with
/// `EQ1_STATUS_TLS_SIGNER_FAILED`). `data`, `signature` and `signature_len` are borrowed until
/// it returns.
///
/// Thread: called on the library's I/O thread, in the middle of a TLS handshake (at every
/// connect and reconnect of every client made from the options). It may run on different
/// library threads over time, and at the same time for two clients made from the same
/// options: make it thread-safe (serialize access to a token that needs it). The I/O runtime
/// moves its other work to another thread while it runs, but this handshake waits for it
/// (within the connect timeout): do not call back into the library from it, and do not block
/// longer than the token needs.
pub type eq1_tls_sign_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        scheme: eq1_tls_signature_scheme,
        data: *const u8,
        data_len: usize,
        signature: *mut u8,
        signature_capacity: usize,
        signature_len: *mut usize,
    ) -> bool,
>;

/// Turns TLS on for every broker (like `eq1_mqtt_options_set_tls`) and trusts the CA
/// certificates in `data`: PEM (one or more `CERTIFICATE` blocks) or one DER certificate,
/// `len` bytes. The data is decoded and copied here: the buffer may be freed on return.
/// Replaces a CA file or earlier CA data.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL, or `data` is NULL with `len` > 0.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `len` is 0.
/// - `EQ1_STATUS_TLS_CONFIG` when `data` holds no certificate or a malformed one.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_tls`, `eq1_mqtt_options_set_tls_client_cert_data`.
///
/// # Safety
/// `options` is NULL or live; `data` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_ca_data(
    options: *mut eq1_mqtt_options,
    data: *const u8,
    len: usize,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let data = non_empty(unsafe { bytes(data, len, "CA data") }?, "CA data")?;
        o.enable_tls_with_ca_data(data)
    })
}

/// Client certificate chain and private key from memory. `cert` (`cert_len` bytes): PEM
/// (leaf first, then intermediates) or one DER certificate. `key` (`key_len` bytes): PEM or
/// DER, PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`: PBES2 with
/// AES-128/192/256-CBC or 3DES, PBKDF2 or scrypt), traditional RSA (`RSA PRIVATE KEY`) or EC
/// (`EC PRIVATE KEY`), also OpenSSL's traditional encryption (`Proc-Type: 4,ENCRYPTED` with
/// `DEK-Info: AES-128/192/256-CBC`, `DES-EDE3-CBC` or `DES-CBC`, as written by
/// `openssl genrsa -aes256`). `key_password` decrypts an encrypted key; NULL otherwise.
/// Everything is decoded, decrypted and checked to fit together here, then copied: the
/// buffers may be freed on return. Call after `eq1_mqtt_options_set_tls` (or `_ca_data`).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL, or `cert` or `key` is NULL with a
///   length > 0.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `cert_len` or `key_len` is 0.
/// - `EQ1_STATUS_INVALID_UTF8` when `key_password` is not valid UTF-8.
/// - `EQ1_STATUS_TLS_KEY_PASSWORD` when the key is encrypted and `key_password` is NULL or
///   wrong.
/// - `EQ1_STATUS_TLS_CONFIG` when the certificate or key cannot be decoded, the key's type or
///   cipher is not supported, or the key does not belong to the certificate.
/// - `EQ1_STATUS_INVALID_STATE` when TLS is not on yet (`eq1_mqtt_options_set_tls` first).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_tls_client_cert`, `eq1_mqtt_options_set_tls_client_signer`.
///
/// # Safety
/// `options` is NULL or live; `cert` and `key` are NULL or point to their lengths of readable
/// bytes; `key_password` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_client_cert_data(
    options: *mut eq1_mqtt_options,
    cert: *const u8,
    cert_len: usize,
    key: *const u8,
    key_len: usize,
    key_password: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract (three times).
        let cert = non_empty(
            unsafe { bytes(cert, cert_len, "client certificate") }?,
            "client certificate",
        )?;
        // SAFETY: as above.
        let key = non_empty(unsafe { bytes(key, key_len, "client key") }?, "client key")?;
        // SAFETY: as above.
        let password = unsafe { optional_c_str(key_password, "key password") }?;
        o.set_client_certificate_data(cert, key, password)
    })
}

/// Client certificate whose private key never leaves its hardware: the library sends
/// `cert_chain` (`len` bytes, PEM leaf first then intermediates, or one DER certificate) and
/// has `callback` sign the handshake (see `eq1_tls_sign_cb`: it may run on the I/O thread).
/// The schemes asked for follow the leaf's public key: RSA (PSS and PKCS#1 v1.5 with SHA-256,
/// -384, -512), ECDSA P-256/P-384/P-521 or Ed25519. Replaces a client certificate set before.
/// `user_data` is passed to every call; it must stay valid until the options and every client
/// created from them are freed. Call after `eq1_mqtt_options_set_tls` (or `_ca_data`).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `callback` is NULL, or `cert_chain` is NULL
///   with `len` > 0.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `len` is 0.
/// - `EQ1_STATUS_TLS_CONFIG` when the chain cannot be decoded or its key type is not
///   supported.
/// - `EQ1_STATUS_INVALID_STATE` when TLS is not on yet (`eq1_mqtt_options_set_tls` first).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// A callback that returns false (or a signature of length 0 or beyond the capacity) fails
/// that handshake with `EQ1_STATUS_TLS_SIGNER_FAILED`.
///
/// See also: `eq1_tls_sign_cb`, `eq1_tls_signature_scheme`,
/// `eq1_mqtt_options_set_tls_client_cert_data`.
///
/// # Safety
/// `options` is NULL or live; `cert_chain` is NULL or points to `len` readable bytes;
/// `callback` may be called with `user_data` from any library thread until the options and
/// their clients are freed.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_client_signer(
    options: *mut eq1_mqtt_options,
    cert_chain: *const u8,
    len: usize,
    callback: eq1_tls_sign_cb,
    user_data: *mut c_void,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let chain = non_empty(
            unsafe { bytes(cert_chain, len, "certificate chain") }?,
            "certificate chain",
        )?;
        let callback =
            callback.ok_or_else(|| Error::NullArgument("the signing callback is NULL".into()))?;
        let user_data = UserData(user_data);
        let sign: SignFn = Arc::new(move |scheme, message| {
            let user_data = &user_data;
            c_sign(callback, user_data.0, scheme, message)
        });
        o.set_client_signer(chain, sign)
    })
}

type SignCallback = unsafe extern "C" fn(
    *mut c_void,
    eq1_tls_signature_scheme,
    *const u8,
    usize,
    *mut u8,
    usize,
    *mut usize,
) -> bool;

fn c_sign(
    callback: SignCallback,
    user_data: *mut c_void,
    scheme: SignatureScheme,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let mut signature = vec![0u8; EQ1_TLS_SIGNATURE_CAPACITY];
    let mut signature_len = 0usize;
    let scheme_c = eq1_tls_signature_scheme::from(scheme);
    // SAFETY: the user's callback with their user data; the message, the buffer and the
    // length outlive the call and are the sizes passed.
    let signed = unsafe {
        callback(
            user_data,
            scheme_c,
            message.as_ptr(),
            message.len(),
            signature.as_mut_ptr(),
            signature.len(),
            &mut signature_len,
        )
    };
    if !signed {
        return Err(format!(
            "the signing callback returned false (scheme {scheme:?})"
        ));
    }
    if signature_len == 0 || signature_len > signature.len() {
        return Err(format!(
            "the signing callback set signature_len {signature_len}, outside 1..={}",
            signature.len()
        ));
    }
    signature.truncate(signature_len);
    Ok(signature)
}

/// ALPN protocol ids offered in the TLS handshake, in order of preference (`count` strings,
/// e.g. `{"mqtt"}` for brokers on port 443 that multiplex by ALPN). Each is NUL-terminated
/// UTF-8 of 1..255 bytes. `count` 0 (with `protocols` NULL or not) offers none again. The
/// strings are copied. A broker that refuses them all (alert no_application_protocol) fails
/// the handshake with `EQ1_STATUS_TLS_ERROR`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL, `protocols` is NULL with `count` > 0,
///   or one of the strings is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when a string is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when a string is empty or longer than 255 bytes, or all
///   together exceed the TLS extension (65533 bytes).
/// - `EQ1_STATUS_INVALID_STATE` when TLS is not on yet (`eq1_mqtt_options_set_tls` first).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// # Safety
/// `options` is NULL or live; `protocols` is NULL or points to `count` pointers, each NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_alpn(
    options: *mut eq1_mqtt_options,
    protocols: *const *const c_char,
    count: usize,
) -> eq1_status {
    with_options(options, |o| {
        // Every id takes at least 2 bytes of the 65533: more cannot be valid.
        if count > 65_533 / 2 {
            return Err(Error::InvalidArgument(format!(
                "{count} ALPN protocols cannot fit in the TLS extension"
            )));
        }
        let mut list = Vec::with_capacity(count);
        if count > 0 {
            if protocols.is_null() {
                return Err(Error::NullArgument(format!(
                    "ALPN protocols is NULL but count is {count}"
                )));
            }
            // SAFETY: non-NULL and `count` pointers long per the contract; count is bounded.
            let pointers = unsafe { std::slice::from_raw_parts(protocols, count) };
            for (i, &pointer) in pointers.iter().enumerate() {
                // SAFETY: NULL or NUL-terminated per the contract.
                let protocol = unsafe { c_str(pointer, &format!("ALPN protocol {i}")) }?;
                list.push(protocol.as_bytes().to_vec());
            }
        }
        o.set_tls_alpn(list)
    })
}

/// The TLS server name to use instead of the broker's host: sent as SNI and required in the
/// broker's certificate (hostname verification), e.g. when the broker is reached by an IP
/// address or through a tunnel but its certificate names `broker.example.com`. A DNS name or
/// an IP address. NULL goes back to the host of each broker. Applies to every broker.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `server_name` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `server_name` is not a valid DNS name or IP address.
/// - `EQ1_STATUS_INVALID_STATE` when TLS is not on yet (`eq1_mqtt_options_set_tls` first).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_tls_verify_hostname`.
///
/// # Safety
/// `options` is NULL or live; `server_name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_server_name(
    options: *mut eq1_mqtt_options,
    server_name: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let name = unsafe { optional_c_str(server_name, "server name") }?;
        o.set_tls_server_name(name)
    })
}

/// Adds the certificate revocation lists of a file (PEM `X509 CRL` blocks, or one DER CRL),
/// read when the client connects. The broker's certificate chain is checked against every CRL
/// given: a revoked certificate fails the handshake with `EQ1_STATUS_TLS_CERT_REVOKED`. A
/// certificate whose issuer has no CRL here is not refused for it.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `crl_file` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `crl_file` is not valid UTF-8.
/// - `EQ1_STATUS_TLS_CONFIG` when `crl_file` cannot be read.
/// - `EQ1_STATUS_INVALID_STATE` when TLS is not on yet (`eq1_mqtt_options_set_tls` first).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_tls_crl_data`.
///
/// # Safety
/// `options` is NULL or live; `crl_file` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_crl_file(
    options: *mut eq1_mqtt_options,
    crl_file: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.add_tls_crl_file(unsafe { c_str(crl_file, "CRL file") }?)
    })
}

/// Adds the certificate revocation lists of `data` (`len` bytes: PEM `X509 CRL` blocks, or
/// one DER CRL), decoded and copied here. Checked like `eq1_mqtt_options_set_tls_crl_file`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL, or `data` is NULL with `len` > 0.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `len` is 0.
/// - `EQ1_STATUS_TLS_CONFIG` when `data` holds no CRL or a malformed one.
/// - `EQ1_STATUS_INVALID_STATE` when TLS is not on yet (`eq1_mqtt_options_set_tls` first).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_tls_crl_file`.
///
/// # Safety
/// `options` is NULL or live; `data` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_crl_data(
    options: *mut eq1_mqtt_options,
    data: *const u8,
    len: usize,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let data = non_empty(unsafe { bytes(data, len, "CRL data") }?, "CRL data")?;
        o.add_tls_crl_data(data)
    })
}

fn non_empty<'a>(data: &'a [u8], what: &str) -> crate::Result<&'a [u8]> {
    if data.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{what} is empty (length 0)"
        )));
    }
    Ok(data)
}

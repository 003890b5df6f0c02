//! Decodes what users hand us for TLS, from files or memory: certificates (PEM or DER),
//! certificate revocation lists, and private keys in every form OpenSSL writes by default —
//! PKCS#8 (plain or encrypted with PBES2: AES-CBC or 3DES), traditional PKCS#1 RSA and SEC1 EC
//! keys, and OpenSSL's traditional encrypted PEM (`Proc-Type: 4,ENCRYPTED` + `DEK-Info`).

use crate::core::error::{Error, Result};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs1KeyDer,
    PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

/// One PEM block: its label, its RFC 1421 headers (traditional encrypted keys carry
/// `Proc-Type` and `DEK-Info` there) and the decoded body.
struct PemBlock {
    label: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl PemBlock {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// True when the data looks like PEM text rather than DER (DER starts with a SEQUENCE tag).
fn is_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every PEM block of `data`, in order. Text outside blocks is ignored, like OpenSSL does.
fn pem_blocks(data: &[u8], what: &str) -> Result<Vec<PemBlock>> {
    let text = std::str::from_utf8(data)
        .map_err(|_| Error::TlsConfig(format!("{what} is neither valid PEM text nor DER")))?;
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut headers = Vec::new();
        let mut base64 = String::new();
        let mut closed = false;
        let mut in_headers = true;
        for line in lines.by_ref() {
            let line = line.trim();
            if line == end {
                closed = true;
                break;
            }
            if in_headers {
                if let Some((name, value)) = line.split_once(':') {
                    headers.push((name.trim().to_string(), value.trim().to_string()));
                    continue;
                }
                in_headers = false;
                if line.is_empty() {
                    continue;
                }
            }
            base64.push_str(line);
        }
        if !closed {
            return Err(Error::TlsConfig(format!(
                "{what}: PEM block '{label}' has no end line"
            )));
        }
        use base64ct::Encoding;
        let body = base64ct::Base64::decode_vec(&base64).map_err(|_| {
            Error::TlsConfig(format!("{what}: PEM block '{label}' is not valid base64"))
        })?;
        blocks.push(PemBlock {
            label: label.to_string(),
            headers,
            body,
        });
    }
    Ok(blocks)
}

/// A DER value must be one complete SEQUENCE: the cheap check that tells DER from garbage (and
/// a wrongly decrypted key from a right one).
fn is_der_sequence(data: &[u8]) -> bool {
    use x509_cert::der::{asn1::AnyRef, Decode, Tag, Tagged};
    matches!(AnyRef::from_der(data), Ok(any) if any.tag() == Tag::Sequence)
}

/// Certificates of a PEM bundle or one DER certificate.
pub fn certificates(data: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = if is_pem(data) {
        pem_blocks(data, what)?
            .into_iter()
            .filter(|b| b.label == "CERTIFICATE" || b.label == "TRUSTED CERTIFICATE")
            .map(|b| CertificateDer::from(b.body))
            .collect()
    } else if is_der_sequence(data) {
        vec![CertificateDer::from(data.to_vec())]
    } else {
        return Err(Error::TlsConfig(format!(
            "{what} is neither PEM nor a DER certificate"
        )));
    };
    if certs.is_empty() {
        return Err(Error::TlsConfig(format!("{what} holds no certificate")));
    }
    for cert in &certs {
        use x509_cert::der::Decode;
        x509_cert::Certificate::from_der(cert.as_ref())
            .map_err(|e| Error::TlsConfig(format!("{what} holds a malformed certificate: {e}")))?;
    }
    Ok(certs)
}

/// Certificate revocation lists of a PEM file (`X509 CRL` blocks) or one DER CRL.
pub fn revocation_lists(
    data: &[u8],
    what: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let crls: Vec<CertificateRevocationListDer<'static>> = if is_pem(data) {
        pem_blocks(data, what)?
            .into_iter()
            .filter(|b| b.label == "X509 CRL")
            .map(|b| CertificateRevocationListDer::from(b.body))
            .collect()
    } else if is_der_sequence(data) {
        vec![CertificateRevocationListDer::from(data.to_vec())]
    } else {
        return Err(Error::TlsConfig(format!(
            "{what} is neither PEM nor a DER CRL"
        )));
    };
    if crls.is_empty() {
        return Err(Error::TlsConfig(format!(
            "{what} holds no certificate revocation list (PEM 'X509 CRL')"
        )));
    }
    for crl in &crls {
        use x509_cert::der::Decode;
        x509_cert::crl::CertificateList::from_der(crl.as_ref()).map_err(|e| {
            Error::TlsConfig(format!(
                "{what} holds a malformed certificate revocation list: {e}"
            ))
        })?;
    }
    Ok(crls)
}

/// The private key of PEM or DER data, decrypted with `password` when it is encrypted.
/// A missing or wrong password is `TlsKeyPassword`; anything else unreadable is `TlsConfig`.
pub fn private_key(
    data: &[u8],
    password: Option<&str>,
    what: &str,
) -> Result<PrivateKeyDer<'static>> {
    if !is_pem(data) {
        return der_private_key(data, password, what);
    }
    let blocks = pem_blocks(data, what)?;
    let block = blocks
        .iter()
        .find(|b| b.label.ends_with("PRIVATE KEY"))
        .ok_or_else(|| Error::TlsConfig(format!("{what} holds no PEM private key")))?;
    match block.label.as_str() {
        "PRIVATE KEY" => Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            block.body.clone(),
        ))),
        "ENCRYPTED PRIVATE KEY" => decrypt_pkcs8(&block.body, password, what),
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            let der = match block.header("Proc-Type") {
                Some(proc_type) if proc_type.contains("ENCRYPTED") => {
                    decrypt_traditional(block, password, what)?
                }
                _ => block.body.clone(),
            };
            Ok(if block.label.starts_with("RSA") {
                PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))
            } else {
                PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))
            })
        }
        other => Err(Error::TlsConfig(format!(
            "{what} holds a '{other}', which is not a supported key format (use PKCS#8, PKCS#1 RSA or SEC1 EC)"
        ))),
    }
}

fn der_private_key(
    data: &[u8],
    password: Option<&str>,
    what: &str,
) -> Result<PrivateKeyDer<'static>> {
    use pkcs8::der::Decode;
    if !is_der_sequence(data) {
        return Err(Error::TlsConfig(format!(
            "{what} is neither PEM nor a DER private key"
        )));
    }
    if pkcs8::EncryptedPrivateKeyInfo::from_der(data).is_ok() {
        return decrypt_pkcs8(data, password, what);
    }
    PrivateKeyDer::try_from(data.to_vec()).map_err(|e| {
        Error::TlsConfig(format!(
            "{what} is not a DER private key (PKCS#8, PKCS#1 or SEC1): {e}"
        ))
    })
}

fn need_password<'a>(password: Option<&'a str>, what: &str) -> Result<&'a str> {
    password.ok_or_else(|| {
        Error::TlsKeyPassword(format!("{what} is encrypted but no password was given"))
    })
}

fn wrong_password(what: &str) -> Error {
    Error::TlsKeyPassword(format!("cannot decrypt {what}: the password is wrong"))
}

/// PKCS#8 `EncryptedPrivateKeyInfo` (PBES2: PBKDF2 or scrypt; AES-128/192/256-CBC, 3DES).
fn decrypt_pkcs8(der: &[u8], password: Option<&str>, what: &str) -> Result<PrivateKeyDer<'static>> {
    use pkcs8::der::Decode;
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::from_der(der).map_err(|e| {
        Error::TlsConfig(format!(
            "{what} is encrypted with a scheme this library does not support (PBES2 with \
             PBKDF2 or scrypt and AES-CBC or 3DES are): {e}"
        ))
    })?;
    let password = need_password(password, what)?;
    let decrypted = encrypted.decrypt(password).map_err(|e| match e {
        // pkcs5 0.7 reports bad padding (the mark of a wrong password) as EncryptFailed.
        pkcs8::Error::EncryptedPrivateKey(
            pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed,
        ) => wrong_password(what),
        other => Error::TlsConfig(format!("cannot decrypt {what}: {other}")),
    })?;
    // A wrong password that happens to leave valid padding still yields no key.
    pkcs8::PrivateKeyInfo::from_der(decrypted.as_bytes()).map_err(|_| wrong_password(what))?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        decrypted.as_bytes().to_vec(),
    )))
}

/// OpenSSL's traditional encryption (`openssl genrsa -aes256`, `openssl ec -des3`): the key
/// is EVP_BytesToKey(MD5, one iteration, salt = the first 8 bytes of the IV) of the password,
/// the body is CBC with PKCS#7 padding.
fn decrypt_traditional(block: &PemBlock, password: Option<&str>, what: &str) -> Result<Vec<u8>> {
    use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
    let dek_info = block.header("DEK-Info").ok_or_else(|| {
        Error::TlsConfig(format!("{what} is encrypted but has no DEK-Info header"))
    })?;
    let (cipher, iv_hex) = dek_info
        .split_once(',')
        .ok_or_else(|| Error::TlsConfig(format!("{what}: DEK-Info '{dek_info}' names no IV")))?;
    let iv = decode_hex(iv_hex.trim())
        .ok_or_else(|| Error::TlsConfig(format!("{what}: DEK-Info IV '{iv_hex}' is not hex")))?;
    let cipher = cipher.trim().to_ascii_uppercase();
    let (key_len, iv_len) = match cipher.as_str() {
        "AES-128-CBC" => (16, 16),
        "AES-192-CBC" => (24, 16),
        "AES-256-CBC" => (32, 16),
        "DES-EDE3-CBC" => (24, 8),
        "DES-CBC" => (8, 8),
        other => {
            return Err(Error::TlsConfig(format!(
                "{what} is encrypted with {other}, which this library does not support \
                 (AES-128/192/256-CBC, DES-EDE3-CBC and DES-CBC are)"
            )))
        }
    };
    if iv.len() != iv_len {
        return Err(Error::TlsConfig(format!(
            "{what}: DEK-Info IV has {} bytes, {cipher} needs {iv_len}",
            iv.len()
        )));
    }
    let password = need_password(password, what)?;
    let key = evp_bytes_to_key(password.as_bytes(), &iv[..8], key_len);
    let bad_key = |_| Error::Internal(format!("{cipher}: key or IV of the wrong length"));
    let plain = match cipher.as_str() {
        "AES-128-CBC" => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
            .map_err(bad_key)?
            .decrypt_padded_vec_mut::<Pkcs7>(&block.body),
        "AES-192-CBC" => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
            .map_err(bad_key)?
            .decrypt_padded_vec_mut::<Pkcs7>(&block.body),
        "AES-256-CBC" => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(bad_key)?
            .decrypt_padded_vec_mut::<Pkcs7>(&block.body),
        "DES-EDE3-CBC" => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(bad_key)?
            .decrypt_padded_vec_mut::<Pkcs7>(&block.body),
        _ => cbc::Decryptor::<des::Des>::new_from_slices(&key, &iv)
            .map_err(bad_key)?
            .decrypt_padded_vec_mut::<Pkcs7>(&block.body),
    }
    .map_err(|_| wrong_password(what))?;
    if !is_der_sequence(&plain) {
        return Err(wrong_password(what));
    }
    Ok(plain)
}

/// OpenSSL's EVP_BytesToKey with MD5 and one iteration: D_i = MD5(D_{i-1} || password || salt).
fn evp_bytes_to_key(password: &[u8], salt: &[u8], key_len: usize) -> Vec<u8> {
    use md5::{Digest, Md5};
    let mut key = Vec::with_capacity(key_len + 16);
    let mut previous: Vec<u8> = Vec::new();
    while key.len() < key_len {
        let mut hasher = Md5::new();
        hasher.update(&previous);
        hasher.update(password);
        hasher.update(salt);
        previous = hasher.finalize().to_vec();
        key.extend_from_slice(&previous);
    }
    key.truncate(key_len);
    key
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evp_bytes_to_key_matches_openssl() {
        // `openssl enc -aes-256-cbc -md md5 -P -pass pass:secret -S 0001020304050607`
        let key = evp_bytes_to_key(b"secret", &[0, 1, 2, 3, 4, 5, 6, 7], 32);
        assert_eq!(key.len(), 32);
        // The first MD5 block is MD5(password || salt).
        use md5::{Digest, Md5};
        let mut first = Md5::new();
        first.update(b"secret");
        first.update([0u8, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(&key[..16], first.finalize().as_slice());
    }

    #[test]
    fn garbage_is_refused_as_configuration() {
        assert!(matches!(
            certificates(b"garbage", "x"),
            Err(Error::TlsConfig(_))
        ));
        assert!(matches!(
            certificates(
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                "x"
            ),
            Err(Error::TlsConfig(_))
        ));
        assert!(matches!(
            private_key(b"", None, "x"),
            Err(Error::TlsConfig(_))
        ));
        assert!(matches!(
            revocation_lists(b"\x30\x00", "x"),
            Err(Error::TlsConfig(_))
        ));
    }

    #[test]
    fn hex_decodes_pairs_only() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}

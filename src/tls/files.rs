//! Reading PEM files: certificate chains and private keys, with errors that name the file.

use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The file's bytes, or why it cannot be read.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Why a PEM file does not parse.
fn malformed(path: &Path, e: pem::Error) -> String {
    format!("{}: not a valid PEM file: {e}", path.display())
}

/// Every certificate in the PEM file at `path` (at least one).
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(path, e))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", path.display()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file at `path`.
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => format!("{}: no PRIVATE KEY in the file", path.display()),
        e => malformed(path, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rk-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = certificates(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.contains("cannot read /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_or_keys_says_so() {
        let path = temp("empty.pem", "just text\n");
        assert!(certificates(&path).unwrap_err().contains("no CERTIFICATE"));
        assert!(private_key(&path).unwrap_err().contains("no PRIVATE KEY"));
    }

    #[test]
    fn a_corrupt_block_is_malformed() {
        let path = temp(
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let err = certificates(&path).unwrap_err();
        assert!(err.contains("not a valid PEM file"), "{err}");
    }
}

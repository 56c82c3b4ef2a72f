//! TLS for `wss://` and `turns:`: the system's root certificates, and the user's own CA for a
//! self-hosted server (`--ca-file`), trusted besides them. Built once at start; a CA file
//! that cannot be read is a usage error then, not a connection error later.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::error::Error;

/// The client configuration every TLS connection of a run uses.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    // rustls needs one process-wide crypto provider; an error only means one is installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    // The system's roots (rustls-native-certs honours SSL_CERT_FILE and SSL_CERT_DIR).
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::Usage(format!("cannot read --ca-file {}: {e}", path.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| {
                Error::Usage(format!(
                    "--ca-file {} is not a PEM file of certificates: {e}",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(Error::Usage(format!(
                "--ca-file {} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                Error::Usage(format!(
                    "--ca-file {}: a certificate cannot be trusted: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

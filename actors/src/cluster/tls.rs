//! Optional TLS for cluster sessions, through ractor_cluster's own TLS modes: the learner node
//! presents a certificate chain, each worker checks it against the CA file it trusts. The cookie
//! still decides who may join; TLS keeps the recipe, prompts and weights private on the way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("TLS settings: {0}")]
    Config(String),
    #[error("'{0}' is not a host name or IP address a certificate can name")]
    ServerName(String),
}

/// What the learner node presents: its certificate chain and private key (PEM files).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_chain: PathBuf,
    pub key: PathBuf,
}

/// What a worker trusts: a CA (or the learner's self-signed certificate) in a PEM file, and the
/// name the learner's certificate must carry.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca: PathBuf,
    pub server_name: String,
}

/// One provider named explicitly: the process may link more than one rustls backend.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File { path: path.to_path_buf(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate ({e})")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(certs)
}

impl ServerTls {
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let chain = certificates(&self.cert_chain)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| TlsError::File { path: self.key.clone(), reason: format!("not a PEM private key ({e})") })?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(format!("{} with {}: {e}", self.cert_chain.display(), self.key.display())))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ClientTls {
    pub fn connector(&self) -> Result<(TlsConnector, ServerName<'static>), TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in certificates(&self.ca)? {
            roots.add(cert).map_err(|e| TlsError::File { path: self.ca.clone(), reason: e.to_string() })?;
        }
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(self.server_name.clone()).map_err(|_| TlsError::ServerName(self.server_name.clone()))?;
        Ok((TlsConnector::from(Arc::new(config)), name))
    }
}

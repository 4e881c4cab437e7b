//! The local certificate authority and the server certificate it signs,
//! generated on first start into `DATA/tls/` and reused afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use recoverite_identity::tokens::write_private_file;

pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TlsFiles {
    pub fn in_dir(data_dir: &Path) -> TlsFiles {
        let d = data_dir.join("tls");
        TlsFiles {
            ca_cert: d.join("ca.pem"),
            server_cert: d.join("server.pem"),
            server_key: d.join("server-key.pem"),
        }
    }
}

fn generate(files: &TlsFiles) -> Result<(), String> {
    let e = |x: rcgen::Error| x.to_string();
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.distinguished_name
        .push(DnType::CommonName, "recoverite local CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "recoverite");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;

    let key = KeyPair::generate().map_err(e)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).map_err(e)?;
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("literal ip")));
    leaf.distinguished_name
        .push(DnType::CommonName, "recoverite");
    leaf.not_before = rcgen::date_time_ymd(2024, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let leaf_cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(e)?;

    let io = |x: std::io::Error| x.to_string();
    write_private_file(&files.server_key, key.serialize_pem().as_bytes()).map_err(io)?;
    write_private_file(&files.server_cert, leaf_cert.pem().as_bytes()).map_err(io)?;
    // The CA's key is not kept: nothing else is ever signed with it.
    write_private_file(&files.ca_cert, ca_cert.pem().as_bytes()).map_err(io)?;
    Ok(())
}

/// Loads (or first creates) the certificates and returns a rustls server config.
pub fn server_config(data_dir: &Path) -> Result<(Arc<rustls::ServerConfig>, TlsFiles), String> {
    let files = TlsFiles::in_dir(data_dir);
    if !(files.ca_cert.exists() && files.server_cert.exists() && files.server_key.exists()) {
        generate(&files)?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.server_cert)
        .map_err(|e| format!("{}: {e}", files.server_cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", files.server_cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.server_key)
        .map_err(|e| format!("{}: {e}", files.server_key.display()))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), files))
}

//! A throw-away certificate authority for the test world's HTTPS services (IdP, registry, API server).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{Result, WorldError};

/// The system trust store that clients such as libcurl read by default.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A test CA whose files live in a temporary directory for as long as the value lives.
pub struct TestCa {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new() -> Result<TestCa> {
        let dir = tempfile::Builder::new()
            .prefix("pgrator-ca-")
            .tempdir()
            .map_err(|e| WorldError::io("creating the CA directory", e))?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "pgrator test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        let ca_pem = cert.pem();
        write(&dir.path().join("ca.pem"), ca_pem.as_bytes())?;
        // Readable by the unprivileged servers too.
        set_mode(dir.path(), 0o755)?;
        Ok(TestCa {
            dir,
            issuer: Issuer::new(params, key),
            ca_pem,
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate (PEM file) to trust.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A server certificate for loopback (`127.0.0.1`, `::1`, `localhost`) plus `extra_names`.
    pub fn server_cert(&self, name: &str, extra_names: &[&str]) -> Result<CertFiles> {
        let mut names = vec![
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "localhost".to_string(),
        ];
        names.extend(extra_names.iter().map(|s| s.to_string()));
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(name, params)
    }

    /// A client certificate with the given common name and organisations (Kubernetes reads O as groups).
    pub fn client_cert(
        &self,
        name: &str,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<CertFiles> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        for org in organizations {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *org);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(name, params)
    }

    fn issue(&self, name: &str, mut params: CertificateParams) -> Result<CertFiles> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let files = CertFiles {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}-key.pem")),
        };
        write(&files.cert, cert.pem().as_bytes())?;
        write(&files.key, key.serialize_pem().as_bytes())?;
        // Servers may run as another user: the key must be readable by them. It is a throw-away test key.
        set_mode(&files.key, 0o644)?;
        Ok(files)
    }

    /// A bundle of the system trust store plus this CA, for clients that only read the system bundle (libcurl in
    /// psql without PGOAUTHDEBUG=UNSAFE): bind-mount it over [`SYSTEM_CA_BUNDLE`] in a private mount namespace.
    pub fn system_bundle_with_ca(&self) -> Result<PathBuf> {
        let mut bundle = std::fs::read(SYSTEM_CA_BUNDLE).unwrap_or_default();
        if !bundle.ends_with(b"\n") && !bundle.is_empty() {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(self.ca_pem.as_bytes());
        let path = self.dir.path().join("bundle-with-test-ca.pem");
        write(&path, &bundle)?;
        Ok(path)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes)
        .map_err(|e| WorldError::io(format!("writing {}", path.display()), e))?;
    set_mode(path, 0o644)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| WorldError::io(format!("chmod {}", path.display()), e))
}

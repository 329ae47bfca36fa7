//! Pushing an image layout to an OCI registry and pulling an image back by digest, with oci-client.
//! Anonymous, basic and token (bearer challenge) auth; a custom CA; plain HTTP only when asked for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::digest::Digest;
use crate::error::{OciError, Result};
use crate::layout::read_layout;
use crate::spec::{
    Descriptor, ImageConfig, ImageIndex, ImageManifest, MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Platform, from_json,
};
use crate::unpack::{PulledLayer, unpack_image};

/// Registry credentials. The password never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How to talk to the registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `None`: anonymous (a bearer token is still fetched when the registry challenges for one).
    pub credentials: Option<Credentials>,
    /// PEM file with CA certificates to trust in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// Plain HTTP to this registry (for a registry on loopback); HTTPS otherwise.
    pub insecure_http: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            credentials: None,
            ca_file: None,
            insecure_http: false,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// The result of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `registry/repository:tag@sha256:…`, what the operator puts into the Cluster.
    pub reference: String,
    /// Digest of the pushed image index.
    pub digest: String,
    /// Blobs uploaded (the others were already in the registry).
    pub uploaded_blobs: usize,
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// Digest of the platform manifest that was unpacked.
    pub manifest_digest: String,
    pub manifest: ImageManifest,
    pub config: ImageConfig,
    pub platform: Platform,
    /// Files and directories written under the output directory.
    pub entries: usize,
}

/// One connection to one registry.
struct Session {
    client: Client,
    auth: RegistryAuth,
    registry: String,
}

impl Session {
    fn new(reference: &Reference, options: &RegistryOptions) -> Result<Session> {
        install_crypto_provider();
        let registry = reference.resolve_registry().to_string();
        let mut extra_roots = Vec::new();
        if let Some(ca) = &options.ca_file {
            extra_roots = read_ca_file(ca)?;
        }
        let config = ClientConfig {
            protocol: if options.insecure_http {
                ClientProtocol::HttpsExcept(vec![registry.clone()])
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates: extra_roots,
            connect_timeout: Some(options.connect_timeout),
            read_timeout: Some(options.read_timeout),
            // Platforms are chosen here, from the index, not by the client.
            platform_resolver: None,
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| OciError::Registry {
            registry: registry.clone(),
            message: format!("cannot set up the HTTP client: {}", chain(&e)),
        })?;
        let auth = match &options.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        Ok(Session {
            client,
            auth,
            registry,
        })
    }

    /// Authenticates up front, so a wrong password or an unreachable registry fails before any upload.
    async fn authenticate(
        &self,
        reference: &Reference,
        operation: RegistryOperation,
    ) -> Result<()> {
        self.client
            .auth(reference, &self.auth, operation)
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: OciDistributionError) -> OciError {
        map_error(&self.registry, e)
    }
}

/// Pushes the image of the layout at `layout` to `reference` (`registry/repository[:tag]`; without a tag, the
/// layout's own ref name is used) and returns the digest reference.
pub async fn push_layout(
    layout: &Path,
    reference: &str,
    options: &RegistryOptions,
) -> Result<Pushed> {
    let content = read_layout(layout)?;
    let parsed = parse_reference(reference)?;
    if parsed.digest().is_some() {
        return Err(OciError::Reference {
            reference: reference.to_string(),
            message: "push to a tag, not a digest (the digest is computed from the content)".into(),
        });
    }
    let tag = match (reference_has_tag(reference), &content.ref_name) {
        (true, _) => parsed.tag().unwrap_or("latest").to_string(),
        (false, Some(name)) => name.clone(),
        (false, None) => {
            return Err(OciError::Reference {
                reference: reference.to_string(),
                message: "no tag given and the layout names none".into(),
            });
        }
    };
    let registry = parsed.registry().to_string();
    let repository = parsed.repository().to_string();
    let tagged = Reference::with_tag(registry.clone(), repository.clone(), tag.clone());
    let session = Session::new(&tagged, options)?;
    session
        .authenticate(&tagged, RegistryOperation::Push)
        .await?;

    let mut uploaded = 0;
    for image in &content.images {
        for blob in image.layers.iter().chain(std::iter::once(&image.config)) {
            let digest = &blob.descriptor.digest;
            let exists = session
                .client
                .blob_exists(&tagged, digest)
                .await
                .map_err(|e| session.error(e))?;
            if exists {
                tracing::debug!(%digest, "blob already in the registry");
                continue;
            }
            tracing::info!(%digest, size = blob.bytes.len(), "uploading blob");
            session
                .client
                .push_blob(&tagged, blob.bytes.clone(), digest)
                .await
                .map_err(|e| session.error(e))?;
            uploaded += 1;
        }
        let by_digest = Reference::with_digest(
            registry.clone(),
            repository.clone(),
            image.manifest.descriptor.digest.clone(),
        );
        push_manifest(
            &session,
            &by_digest,
            &image.manifest.bytes,
            &image.manifest.descriptor.media_type,
        )
        .await?;
    }
    push_manifest(
        &session,
        &tagged,
        &content.top.bytes,
        &content.top.descriptor.media_type,
    )
    .await?;

    // What the tag now points at must be what was built.
    let served = session
        .client
        .fetch_manifest_digest(&tagged, &session.auth)
        .await
        .map_err(|e| session.error(e))?;
    if served != content.top.descriptor.digest {
        return Err(OciError::DigestMismatch {
            what: format!("tag {tag} after the push"),
            expected: content.top.descriptor.digest.clone(),
            actual: served,
        });
    }
    Ok(Pushed {
        reference: format!("{registry}/{repository}:{tag}@{served}"),
        digest: served,
        uploaded_blobs: uploaded,
    })
}

async fn push_manifest(
    session: &Session,
    reference: &Reference,
    bytes: &[u8],
    media_type: &str,
) -> Result<()> {
    let content_type = http::HeaderValue::from_str(media_type).map_err(|_| {
        OciError::InvalidInput(format!(
            "media type '{media_type}' is not a valid header value"
        ))
    })?;
    session
        .client
        .push_manifest_raw(reference, bytes.to_vec(), content_type)
        .await
        .map(|_| ())
        .map_err(|e| session.error(e))
}

/// Pulls `reference` (which must name a digest) for `platform_arch` and unpacks its layers into `out` as a node
/// would for an image volume. Every manifest, config and layer is checked against its digest and size before it is
/// used; `out` must not exist or be empty, and on any error it is left as it was.
pub async fn pull_image(
    reference: &str,
    out: &Path,
    options: &RegistryOptions,
    platform_arch: crate::platform::Arch,
) -> Result<Pulled> {
    let parsed = parse_reference(reference)?;
    let Some(top_digest) = parsed.digest().map(str::to_string) else {
        return Err(OciError::Reference {
            reference: reference.to_string(),
            message: "pull by digest: the reference must end in @sha256:<digest>".into(),
        });
    };
    let top_digest = Digest::parse(&top_digest)?;
    crate::unpack::check_pull_target(out)?;
    let registry = parsed.registry().to_string();
    let repository = parsed.repository().to_string();
    let session = Session::new(&parsed, options)?;
    session
        .authenticate(&parsed, RegistryOperation::Pull)
        .await?;

    let accepted = [
        MEDIA_TYPE_INDEX,
        MEDIA_TYPE_MANIFEST,
        MEDIA_TYPE_DOCKER_LIST,
        MEDIA_TYPE_DOCKER_MANIFEST,
    ];
    let (top, _) = session
        .client
        .pull_manifest_raw(&parsed, &session.auth, &accepted)
        .await
        .map_err(|e| session.error(e))?;
    top_digest.verify(&format!("manifest {reference}"), &top)?;
    let media_type = media_type_of(&top)?;
    let (manifest_digest, manifest_bytes, platform) = match media_type.as_str() {
        MEDIA_TYPE_INDEX | MEDIA_TYPE_DOCKER_LIST => {
            let index: ImageIndex = from_json("image index", &top)?;
            let chosen = choose_platform(&index, platform_arch)?;
            let by_digest =
                Reference::with_digest(registry.clone(), repository.clone(), chosen.digest.clone());
            let (bytes, _) = session
                .client
                .pull_manifest_raw(
                    &by_digest,
                    &session.auth,
                    &[MEDIA_TYPE_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST],
                )
                .await
                .map_err(|e| session.error(e))?;
            check_blob(&format!("manifest {}", chosen.digest), chosen, &bytes)?;
            let platform = chosen
                .platform
                .clone()
                .unwrap_or_else(|| linux(platform_arch));
            (chosen.digest.clone(), bytes.to_vec(), platform)
        }
        MEDIA_TYPE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => {
            (top_digest.to_string(), top.to_vec(), linux(platform_arch))
        }
        other => {
            return Err(OciError::UnsupportedMediaType {
                what: reference.to_string(),
                media_type: other.to_string(),
            });
        }
    };
    let manifest: ImageManifest = from_json("image manifest", &manifest_bytes)?;
    let config_bytes = fetch_blob(&session, &parsed, &manifest.config, "image config").await?;
    let config: ImageConfig = from_json("image config", &config_bytes)?;
    if config.architecture != platform_arch.oci_name() || config.os != "linux" {
        return Err(OciError::NoPlatform {
            wanted: linux(platform_arch).to_string(),
            available: format!("{}/{}", config.os, config.architecture),
        });
    }
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(OciError::Registry {
            registry: registry.clone(),
            message: format!(
                "image config lists {} layers but the manifest {}",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            ),
        });
    }
    let mut layers = Vec::new();
    for (i, (layer, diff_id)) in manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .enumerate()
    {
        let what = format!("layer {i} ({})", layer.digest);
        let blob = fetch_blob(&session, &parsed, layer, &what).await?;
        layers.push(PulledLayer {
            what,
            media_type: layer.media_type.clone(),
            blob,
            diff_id: Digest::parse(diff_id)?,
        });
    }
    let entries = unpack_image(&layers, out)?;
    Ok(Pulled {
        manifest_digest,
        manifest,
        config,
        platform,
        entries,
    })
}

/// Downloads a blob, refusing more bytes than the descriptor announces, then checks size and digest.
async fn fetch_blob(
    session: &Session,
    image: &Reference,
    descriptor: &Descriptor,
    what: &str,
) -> Result<Vec<u8>> {
    let mut stream = session
        .client
        .pull_blob_stream(image, descriptor.digest.as_str())
        .await
        .map_err(|e| session.error(e))?;
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| stream_error(&session.registry, what, e))?;
        if (data.len() + chunk.len()) as u64 > descriptor.size {
            return Err(OciError::SizeMismatch {
                what: what.to_string(),
                expected: descriptor.size,
                actual: (data.len() + chunk.len()) as u64,
            });
        }
        data.extend_from_slice(&chunk);
    }
    check_blob(what, descriptor, &data)?;
    Ok(data)
}

fn check_blob(what: &str, descriptor: &Descriptor, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 != descriptor.size {
        return Err(OciError::SizeMismatch {
            what: what.to_string(),
            expected: descriptor.size,
            actual: bytes.len() as u64,
        });
    }
    Digest::parse(&descriptor.digest)?.verify(what, bytes)
}

fn choose_platform(index: &ImageIndex, arch: crate::platform::Arch) -> Result<&Descriptor> {
    index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch.oci_name())
        })
        .ok_or_else(|| OciError::NoPlatform {
            wanted: linux(arch).to_string(),
            available: index
                .manifests
                .iter()
                .map(|m| {
                    m.platform
                        .as_ref()
                        .map_or_else(|| "unknown".to_string(), ToString::to_string)
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn linux(arch: crate::platform::Arch) -> Platform {
    Platform {
        architecture: arch.oci_name().to_string(),
        os: "linux".to_string(),
        variant: arch.oci_variant().map(str::to_string),
    }
}

fn media_type_of(manifest: &[u8]) -> Result<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = from_json("manifest", manifest)?;
    Ok(match (probe.media_type, probe.manifests) {
        (Some(m), _) => m,
        // mediaType is optional in OCI documents: an index is the one with `manifests`.
        (None, Some(_)) => MEDIA_TYPE_INDEX.to_string(),
        (None, None) => MEDIA_TYPE_MANIFEST.to_string(),
    })
}

pub fn parse_reference(reference: &str) -> Result<Reference> {
    reference
        .parse::<Reference>()
        .map_err(|e| OciError::Reference {
            reference: reference.to_string(),
            message: e.to_string(),
        })
}

/// Whether the text names a tag (`…/name:tag`), as opposed to the parser's implicit `latest`.
fn reference_has_tag(reference: &str) -> bool {
    let name = reference.split('@').next().unwrap_or(reference);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.contains(':')
}

fn read_ca_file(path: &Path) -> Result<Vec<Certificate>> {
    let text = std::fs::read_to_string(path).map_err(|e| OciError::CaFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut certs = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            return Err(OciError::CaFile {
                path: path.to_path_buf(),
                message: "a certificate has no END line".into(),
            });
        };
        let end = start + len + END.len();
        certs.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data: format!("{}\n", &rest[start..end]).into_bytes(),
        });
        rest = &rest[end..];
    }
    if certs.is_empty() {
        return Err(OciError::CaFile {
            path: path.to_path_buf(),
            message: "no PEM certificate found".into(),
        });
    }
    Ok(certs)
}

/// reqwest needs a rustls crypto provider; this crate uses ring (no C toolchain for aws-lc needed).
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another thread is fine: a provider is then installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn stream_error(registry: &str, what: &str, e: std::io::Error) -> OciError {
    if let Some(DigestError::VerificationError { expected, actual }) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<DigestError>())
    {
        return OciError::DigestMismatch {
            what: what.to_string(),
            expected: expected.clone(),
            actual: actual.clone(),
        };
    }
    OciError::Registry {
        registry: registry.to_string(),
        message: format!("downloading {what}: {}", chain(&e)),
    }
}

/// Sorts oci-client's errors into the few cases a user acts on differently.
fn map_error(registry: &str, e: OciDistributionError) -> OciError {
    let message = chain(&e);
    let unauthorized = || OciError::Unauthorized {
        registry: registry.to_string(),
        message: message.clone(),
    };
    match &e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|x| matches!(x.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            unauthorized()
        }
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => unauthorized(),
        OciDistributionError::RequestError(r)
            if matches!(r.status().map(|s| s.as_u16()), Some(401 | 403)) =>
        {
            unauthorized()
        }
        OciDistributionError::RequestError(r) if r.is_connect() || r.is_timeout() => {
            OciError::Unreachable {
                registry: registry.to_string(),
                message,
            }
        }
        OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
            OciError::DigestMismatch {
                what: "content from the registry".into(),
                expected: expected.clone(),
                actual: actual.clone(),
            }
        }
        _ => OciError::Registry {
            registry: registry.to_string(),
            message,
        },
    }
}

/// An error and all its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_told_apart_from_ports() {
        assert!(reference_has_tag("127.0.0.1:5000/pgrator/validator:1"));
        assert!(!reference_has_tag("127.0.0.1:5000/pgrator/validator"));
        assert!(!reference_has_tag(
            "127.0.0.1:5000/pgrator/validator@sha256:00"
        ));
    }

    #[test]
    fn media_type_is_inferred_when_absent() {
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"manifests":[]}"#).expect("index"),
            MEDIA_TYPE_INDEX
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"config":{},"layers":[]}"#).expect("manifest"),
            MEDIA_TYPE_MANIFEST
        );
    }

    #[test]
    fn ca_file_without_certificates_is_refused() {
        let f = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(f.path(), "not a pem").expect("write");
        let err = read_ca_file(f.path()).expect_err("no certs").to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn credentials_do_not_print_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}

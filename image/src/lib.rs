//! The operator's container image, built like the extension image (deterministic layer, canonical JSON, OCI
//! layout written atomically): the program at `/usr/local/bin/<name>`, the CA certificates, `/etc/passwd` and
//! `/etc/group` with the non-root user 65532, and — for a dynamically linked program — the shared libraries and
//! loader it needs, at the paths the loader looks in. Nothing else: no shell, no package manager.

use std::path::{Path, PathBuf};

use pgrator_extension_oci::elf::inspect_executable;
use pgrator_extension_oci::epoch::rfc3339_utc;
use pgrator_extension_oci::extension::validate_tag;
use pgrator_extension_oci::image::{ImageInput, ImageSet, build_image, build_index};
use pgrator_extension_oci::layer::{FileMode, LayerBuilder};
use pgrator_extension_oci::layout::write_layout;
use pgrator_extension_oci::spec::{Annotations, ContainerConfig, annotation};
use pgrator_extension_oci::system_libs::{RuntimeLibrary, runtime_libraries};
use pgrator_extension_oci::{Arch, OciError};

/// The non-root user and group the operator runs as.
pub const USER_ID: u32 = 65532;
/// The system CA bundle (Debian's ca-certificates) copied into the image.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where the bundle goes in the image (the same path; rustls-native-certs and OpenSSL look there).
const IMAGE_CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error(
        "{program} ({arch}) is dynamically linked, and its libraries can only be collected on a {arch} machine; build it statically (e.g. -C target-feature=+crt-static)"
    )]
    ForeignDynamicProgram { program: PathBuf, arch: Arch },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// What goes into the operator image.
#[derive(Debug, Clone)]
pub struct OperatorImageSpec {
    /// Program name (`/usr/local/bin/<name>`, the entrypoint).
    pub name: String,
    pub version: String,
    /// The program for each architecture.
    pub programs: Vec<(Arch, PathBuf)>,
    /// Arguments after the entrypoint (the image's `Cmd`).
    pub args: Vec<String>,
    /// The CA bundle to include (default: this machine's [`SYSTEM_CA_BUNDLE`]).
    pub ca_bundle: PathBuf,
    pub license_files: Vec<PathBuf>,
    pub spdx_license: Option<String>,
    pub source: Option<String>,
    pub revision: Option<String>,
    /// Seconds since 1970 for every timestamp (SOURCE_DATE_EPOCH).
    pub epoch: u64,
}

/// A built operator image.
#[derive(Debug, Clone)]
pub struct BuiltOperatorImage {
    pub set: ImageSet,
    pub tag: String,
    /// Shared libraries bundled per architecture (empty for a static program).
    pub libraries: Vec<(Arch, Vec<RuntimeLibrary>)>,
}

pub fn build_operator_image(spec: &OperatorImageSpec) -> Result<BuiltOperatorImage> {
    validate_program_name(&spec.name)?;
    validate_tag(&spec.version)?;
    if spec.programs.is_empty() {
        return Err(ImageError::InvalidInput("no program given".into()));
    }
    let ca_bundle = read(&spec.ca_bundle)?;
    let licenses = spec
        .license_files
        .iter()
        .map(|p| Ok((file_name(p)?, read(p)?)))
        .collect::<Result<Vec<_>>>()?;
    let created = rfc3339_utc(spec.epoch);
    let entrypoint = format!("/usr/local/bin/{}", spec.name);

    let mut images = Vec::new();
    let mut all_libraries = Vec::new();
    for (arch, program) in &spec.programs {
        let info = inspect_executable(program, *arch)?;
        let libraries = match &info.interpreter {
            None => Vec::new(),
            Some(_) if Arch::host() != Some(*arch) => {
                return Err(ImageError::ForeignDynamicProgram {
                    program: program.clone(),
                    arch: *arch,
                });
            }
            Some(interpreter) => {
                let mut libs = runtime_libraries(program, &[])?;
                // The loader must be at exactly the PT_INTERP path (ldd may print a different spelling of it).
                if !libs.iter().any(|l| &l.image_path == interpreter) {
                    libs.push(RuntimeLibrary {
                        image_path: interpreter.clone(),
                        source: PathBuf::from(interpreter),
                    });
                }
                libs
            }
        };
        tracing::info!(%arch, program = %program.display(), interpreter = ?info.interpreter,
            libraries = ?libraries.iter().map(|l| l.image_path.as_str()).collect::<Vec<_>>(), "checked program");

        let mut layer = LayerBuilder::new();
        layer.file(&entrypoint, FileMode::Executable, read(program)?)?;
        layer.file(IMAGE_CA_BUNDLE, FileMode::Regular, ca_bundle.clone())?;
        layer.file("etc/passwd", FileMode::Regular, passwd().into_bytes())?;
        layer.file("etc/group", FileMode::Regular, group().into_bytes())?;
        for lib in &libraries {
            layer.file(&lib.image_path, FileMode::Executable, read(&lib.source)?)?;
        }
        for (name, bytes) in &licenses {
            layer.file(
                &format!("licenses/{name}"),
                FileMode::Regular,
                bytes.clone(),
            )?;
        }
        let layer = layer.build(spec.epoch)?;
        let annotations = metadata(spec, &created);
        images.push(build_image(ImageInput {
            arch: *arch,
            layers: vec![layer],
            container: ContainerConfig {
                user: Some(format!("{USER_ID}:{USER_ID}")),
                env: vec![
                    "PATH=/usr/local/bin:/usr/bin:/bin".to_string(),
                    format!("SSL_CERT_FILE=/{IMAGE_CA_BUNDLE}"),
                ],
                entrypoint: vec![entrypoint.clone()],
                cmd: spec.args.clone(),
                working_dir: Some("/".to_string()),
                labels: annotations.clone(),
            },
            created: created.clone(),
            annotations,
            created_by: format!("pgrator-image {}", env!("CARGO_PKG_VERSION")),
        })?);
        all_libraries.push((*arch, libraries));
    }
    let set = build_index(images, metadata(spec, &created))?;
    Ok(BuiltOperatorImage {
        set,
        tag: spec.version.clone(),
        libraries: all_libraries,
    })
}

/// Builds the image and writes it as an OCI image layout at `out` (atomically).
pub fn build_operator_layout(spec: &OperatorImageSpec, out: &Path) -> Result<BuiltOperatorImage> {
    let built = build_operator_image(spec)?;
    write_layout(out, &built.set, &built.tag)?;
    Ok(built)
}

/// `root` and the non-root user, no login shell for either (there is none in the image).
fn passwd() -> String {
    format!(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{USER_ID}:{USER_ID}:nonroot:/nonexistent:/sbin/nologin\n"
    )
}

fn group() -> String {
    format!("root:x:0:\nnonroot:x:{USER_ID}:\n")
}

fn metadata(spec: &OperatorImageSpec, created: &str) -> Annotations {
    let mut m = Annotations::new();
    m.insert(annotation::TITLE.into(), spec.name.clone());
    m.insert(
        annotation::DESCRIPTION.into(),
        format!("{}: the pgrator operator", spec.name),
    );
    m.insert(annotation::VERSION.into(), spec.version.clone());
    m.insert(annotation::CREATED.into(), created.to_string());
    if let Some(l) = &spec.spdx_license {
        m.insert(annotation::LICENSES.into(), l.clone());
    }
    if let Some(s) = &spec.source {
        m.insert(annotation::SOURCE.into(), s.clone());
    }
    if let Some(r) = &spec.revision {
        m.insert(annotation::REVISION.into(), r.clone());
    }
    m
}

fn validate_program_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ImageError::InvalidInput(format!(
            "'{name}' is not a plain program name"
        )))
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| ImageError::InvalidInput(format!("{} has no file name", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_name_the_non_root_user() {
        assert!(passwd().contains("nonroot:x:65532:65532:"));
        assert!(group().contains("nonroot:x:65532:"));
    }

    #[test]
    fn program_names_are_plain() {
        validate_program_name("pgrator").expect("ok");
        assert!(validate_program_name("../x").is_err());
        assert!(validate_program_name("").is_err());
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let spec = OperatorImageSpec {
            name: "pgrator".into(),
            version: "0.1.0".into(),
            programs: vec![(Arch::Amd64, PathBuf::from("/nonexistent/pgrator"))],
            args: vec![],
            ca_bundle: PathBuf::from(SYSTEM_CA_BUNDLE),
            license_files: vec![],
            spdx_license: None,
            source: None,
            revision: None,
            epoch: 0,
        };
        let err = build_operator_image(&spec)
            .expect_err("missing")
            .to_string();
        assert!(
            err.contains("/nonexistent/pgrator") && err.contains("does not exist"),
            "{err}"
        );
    }
}

//! The extension image CloudNativePG mounts at `/extensions/<name>` (ImageVolume):
//! `/lib/<library>.so`, `/share/extension/` (control and SQL files, possibly none), `/system/` (shared libraries the
//! stock PostgreSQL image lacks; CNPG `ld_library_path: [system]`), `/licenses/`. Runs as user 65532, tagged
//! `<version>-<pg major>-<distro>`, one image per architecture under an image index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::epoch::rfc3339_utc;
use crate::error::{OciError, Result};
use crate::image::{ImageInput, ImageSet, build_image, build_index};
use crate::layer::{FileMode, LayerBuilder};
use crate::layout::write_layout;
use crate::platform::{Arch, Distro};
use crate::spec::{Annotations, ContainerConfig, annotation};
use crate::system_libs::{BundledLibrary, libraries_to_bundle};
use crate::{elf, labels};

/// The non-root user of the image (CloudNativePG's extension image convention, also distroless "nonroot").
pub const IMAGE_USER: &str = "65532:65532";
/// The PostgreSQL major version the images are built for.
pub const PG_MAJOR: u32 = 18;

/// What to put into an extension image.
#[derive(Debug, Clone)]
pub struct ExtensionSpec {
    /// The extension's name in the Cluster (`/extensions/<name>`): lowercase letters, digits, `_`, `-`.
    pub name: String,
    pub version: String,
    pub distro: Distro,
    /// The module for each architecture.
    pub libraries: Vec<(Arch, PathBuf)>,
    /// The file name under `/lib` (what `dynamic_library_path` lookups find); default: the library's own file name.
    pub library_file_name: Option<String>,
    /// Files for `/share/extension/` (control and SQL scripts).
    pub share_files: Vec<PathBuf>,
    /// Files for `/licenses/`.
    pub license_files: Vec<PathBuf>,
    /// SPDX expression for the `org.opencontainers.image.licenses` annotation.
    pub spdx_license: Option<String>,
    /// Extra directories where `ldd` looks for the module's libraries.
    pub library_search_path: Vec<PathBuf>,
    pub source: Option<String>,
    pub revision: Option<String>,
    /// Seconds since 1970 for every timestamp (SOURCE_DATE_EPOCH).
    pub epoch: u64,
}

/// A built extension image.
#[derive(Debug, Clone)]
pub struct BuiltExtension {
    pub set: ImageSet,
    /// `<version>-<pg major>-<distro>`.
    pub tag: String,
    pub library_file_name: String,
    /// The `/system` libraries of each architecture's image.
    pub bundled: Vec<(Arch, Vec<BundledLibrary>)>,
}

/// Checks every input and builds the images in memory.
pub fn build_extension(spec: &ExtensionSpec) -> Result<BuiltExtension> {
    validate_name(&spec.name)?;
    let tag = format!("{}-{}-{}", spec.version, PG_MAJOR, spec.distro);
    validate_tag(&tag)?;
    if spec.libraries.is_empty() {
        return Err(OciError::InvalidInput("no library given".into()));
    }
    let library_file_name = match &spec.library_file_name {
        Some(n) => n.clone(),
        None => file_name(&spec.libraries[0].1)?,
    };
    if !library_file_name.ends_with(".so") || library_file_name.contains('/') {
        return Err(OciError::InvalidInput(format!(
            "library file name '{library_file_name}' must be a plain file name ending in .so"
        )));
    }
    let share = read_files(&spec.share_files, "share")?;
    let licenses = read_files(&spec.license_files, "license")?;
    if licenses.is_empty() {
        tracing::warn!("no license files given: /licenses will be empty");
    }

    let created = rfc3339_utc(spec.epoch);
    let mut images = Vec::new();
    let mut bundled_all = Vec::new();
    for (arch, library) in &spec.libraries {
        let info = elf::inspect_module(library, *arch, spec.distro)?;
        let bundled = libraries_to_bundle(library, *arch, &info, &spec.library_search_path)?;
        tracing::info!(
            %arch, library = %library.display(), needed = ?info.needed,
            system = ?bundled.iter().map(|b| b.soname.as_str()).collect::<Vec<_>>(),
            "checked module"
        );
        let mut layer = LayerBuilder::new();
        let module = read(library)?;
        layer.file(
            &format!("lib/{library_file_name}"),
            FileMode::Executable,
            module,
        )?;
        layer.dir("share/extension")?;
        for (name, bytes) in &share {
            layer.file(
                &format!("share/extension/{name}"),
                FileMode::Regular,
                bytes.clone(),
            )?;
        }
        layer.dir("system")?;
        for lib in &bundled {
            layer.file(
                &format!("system/{}", lib.soname),
                FileMode::Executable,
                read(&lib.path)?,
            )?;
        }
        layer.dir("licenses")?;
        for (name, bytes) in &licenses {
            layer.file(
                &format!("licenses/{name}"),
                FileMode::Regular,
                bytes.clone(),
            )?;
        }
        let layer = layer.build(spec.epoch)?;

        let metadata = metadata(spec, &library_file_name, &created, Some(*arch), &bundled);
        images.push(build_image(ImageInput {
            arch: *arch,
            layers: vec![layer],
            container: ContainerConfig {
                user: Some(IMAGE_USER.to_string()),
                labels: metadata.clone().into_iter().collect(),
                ..ContainerConfig::default()
            },
            created: created.clone(),
            annotations: metadata,
            created_by: format!("pgrator-extension-oci {}", env!("CARGO_PKG_VERSION")),
        })?);
        bundled_all.push((*arch, bundled));
    }
    let set = build_index(
        images,
        metadata(spec, &library_file_name, &created, None, &[]),
    )?;
    Ok(BuiltExtension {
        set,
        tag,
        library_file_name,
        bundled: bundled_all,
    })
}

/// Builds the images and writes them as an OCI image layout at `out` (atomically).
pub fn build_extension_layout(spec: &ExtensionSpec, out: &Path) -> Result<BuiltExtension> {
    let built = build_extension(spec)?;
    write_layout(out, &built.set, &built.tag)?;
    Ok(built)
}

/// Annotations (manifest, index) and labels (config) that say what the image is and what it targets.
fn metadata(
    spec: &ExtensionSpec,
    library: &str,
    created: &str,
    arch: Option<Arch>,
    bundled: &[BundledLibrary],
) -> Annotations {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    put(annotation::TITLE, spec.name.clone());
    put(
        annotation::DESCRIPTION,
        format!(
            "PostgreSQL {PG_MAJOR} extension {} for CloudNativePG image volumes (Debian {})",
            spec.name, spec.distro
        ),
    );
    put(annotation::VERSION, spec.version.clone());
    put(annotation::CREATED, created.to_string());
    if let Some(l) = &spec.spdx_license {
        put(annotation::LICENSES, l.clone());
    }
    if let Some(s) = &spec.source {
        put(annotation::SOURCE, s.clone());
    }
    if let Some(r) = &spec.revision {
        put(annotation::REVISION, r.clone());
    }
    put(labels::POSTGRESQL_MAJOR, PG_MAJOR.to_string());
    put(labels::OS, spec.distro.to_string());
    put(labels::EXTENSION_NAME, spec.name.clone());
    put(labels::EXTENSION_LIBRARY, library.to_string());
    if let Some(arch) = arch {
        put(labels::ARCH, arch.to_string());
        put(
            labels::SYSTEM_LIBRARIES,
            bundled
                .iter()
                .map(|b| b.soname.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    m
}

/// CNPG's rule for extension names: lowercase alphanumerics, `_` or `-`, starting and ending alphanumeric.
pub fn validate_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty()
        || !name.chars().all(ok_char)
        || !alnum(name.chars().next())
        || !alnum(name.chars().last())
    {
        return Err(OciError::InvalidInput(format!(
            "extension name '{name}' must be lowercase letters, digits, '_' or '-', starting and ending with a letter \
             or digit"
        )));
    }
    Ok(())
}

/// OCI distribution's tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<()> {
    let first_ok = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || tag.len() > 128 {
        return Err(OciError::InvalidInput(format!(
            "'{tag}' is not a valid image tag (check --version)"
        )));
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| OciError::io(format!("reading {}", path.display()), e))
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| OciError::InvalidInput(format!("{} has no file name", path.display())))
}

fn read_files(paths: &[PathBuf], kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for p in paths {
        let name = file_name(p)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(OciError::InvalidInput(format!(
                "two {kind} files are named {name}"
            )));
        }
        out.push((name, read(p)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cnpg_rules() {
        for ok in ["pgrator-validator", "pg_ivm", "a1"] {
            validate_name(ok).expect(ok);
        }
        for bad in ["", "-a", "a-", "Pgrator", "a/b", "a.b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_follow_the_distribution_grammar() {
        validate_tag("0.1.0-18-bookworm").expect("ok");
        assert!(validate_tag("-x").is_err());
        assert!(validate_tag("a:b").is_err());
        assert!(validate_tag(&"a".repeat(129)).is_err());
    }
}

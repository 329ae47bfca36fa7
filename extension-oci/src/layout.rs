//! OCI image layout directories (image-spec image-layout.md): `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//! Written atomically: everything goes into a hidden staging directory next to the target, which is renamed into
//! place only when complete, so a failed build leaves no half-written layout behind.

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{OciError, Result};
use crate::image::{Blob, ImageSet};
use crate::spec::{
    Annotations, Descriptor, ImageIndex, ImageManifest, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
    OciLayoutFile, annotation, from_json, to_canonical_json,
};

const LAYOUT_VERSION: &str = "1.0.0";

/// Writes `set` as an image layout at `out`, its top-level `index.json` naming the image index `ref_name` (the tag).
/// `out` must not exist, or be an empty directory, or be a previous image layout (which is replaced whole).
pub fn write_layout(out: &Path, set: &ImageSet, ref_name: &str) -> Result<()> {
    let replace = check_output(out, "oci-layout")?;
    let staging = staging_dir(out)?;
    write_contents(staging.path(), set, ref_name)?;
    commit_dir(staging, out, replace)
}

fn write_contents(dir: &Path, set: &ImageSet, ref_name: &str) -> Result<()> {
    let layout = OciLayoutFile {
        image_layout_version: LAYOUT_VERSION.to_string(),
    };
    write_file(
        &dir.join("oci-layout"),
        &to_canonical_json("oci-layout", &layout)?,
    )?;
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)
        .map_err(|e| OciError::io(format!("creating {}", blobs.display()), e))?;
    let write_blob = |digest: &str, bytes: &[u8]| -> Result<()> {
        let digest = Digest::parse(digest)?;
        let path = blobs.join(digest.hex());
        if !path.exists() {
            write_file(&path, bytes)?;
        }
        Ok(())
    };
    write_blob(&set.index.descriptor.digest, &set.index.bytes)?;
    for image in &set.images {
        write_blob(&image.manifest.descriptor.digest, &image.manifest.bytes)?;
        write_blob(&image.config.descriptor.digest, &image.config.bytes)?;
        for layer in &image.layers {
            write_blob(&layer.digest.to_string(), &layer.blob)?;
        }
    }
    let mut top = set.index.descriptor.clone();
    top.annotations
        .insert(annotation::REF_NAME.to_string(), ref_name.to_string());
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_string()),
        manifests: vec![top],
        annotations: Annotations::new(),
    };
    write_file(
        &dir.join("index.json"),
        &to_canonical_json("index.json", &index)?,
    )
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| OciError::io(format!("writing {}", path.display()), e))
}

/// Whether `out` may be written: `Ok(true)` when it exists and will be replaced, `Ok(false)` when it is absent.
/// A non-empty directory is replaced only when it holds `marker` (it is an earlier output of the same kind).
pub(crate) fn check_output(out: &Path, marker: &str) -> Result<bool> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(OciError::io(format!("inspecting {}", out.display()), e)),
        Ok(meta) if meta.is_dir() => {
            let mut entries = std::fs::read_dir(out)
                .map_err(|e| OciError::io(format!("listing {}", out.display()), e))?;
            if entries.next().is_none() || out.join(marker).exists() {
                Ok(true)
            } else {
                Err(OciError::OutputExists {
                    path: out.to_path_buf(),
                })
            }
        }
        Ok(_) => Err(OciError::OutputExists {
            path: out.to_path_buf(),
        }),
    }
}

/// A hidden directory next to `out`, or in its nearest existing ancestor when the parent does not exist yet (same
/// file system, so the final rename is atomic, and nothing is created outside it before the commit); removed on
/// drop.
pub(crate) fn staging_dir(out: &Path) -> Result<tempfile::TempDir> {
    let mut parent = parent_of(out);
    while !parent.is_dir() {
        parent = match parent.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempdir_in(&parent)
        .map_err(|e| {
            OciError::io(
                format!("creating a staging directory in {}", parent.display()),
                e,
            )
        })
}

/// Moves a finished staging directory to `out`, replacing what is there when `replace` is set.
pub(crate) fn commit_dir(staging: tempfile::TempDir, out: &Path, replace: bool) -> Result<()> {
    let parent = parent_of(out);
    std::fs::create_dir_all(&parent)
        .map_err(|e| OciError::io(format!("creating {}", parent.display()), e))?;
    let old = if replace {
        // Move the previous content aside first: rename(2) cannot replace a non-empty directory.
        let aside = tempfile::Builder::new()
            .prefix(".replaced-")
            .tempdir_in(&parent)
            .map_err(|e| {
                OciError::io(format!("creating a directory in {}", parent.display()), e)
            })?;
        let target = aside.path().join("old");
        std::fs::rename(out, &target)
            .map_err(|e| OciError::io(format!("moving {} aside", out.display()), e))?;
        Some((aside, target))
    } else {
        None
    };
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, out) {
        // Put the previous content back and drop the staging copy.
        if let Some((_, target)) = &old {
            let _ = std::fs::rename(target, out);
        }
        let _ = std::fs::remove_dir_all(&staged);
        return Err(OciError::io(
            format!("moving the finished output to {}", out.display()),
            e,
        ));
    }
    // `old`'s TempDir removes the replaced content when dropped here.
    drop(old);
    Ok(())
}

fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// One platform image read back from a layout, every blob verified.
#[derive(Debug, Clone)]
pub struct LocalImage {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

/// The content of a layout: the top-level document (an index, or a single manifest) and its images.
#[derive(Debug, Clone)]
pub struct LayoutContent {
    pub top: Blob,
    pub ref_name: Option<String>,
    pub images: Vec<LocalImage>,
}

/// Reads the single image of the layout at `dir`, verifying the size and digest of every blob.
pub fn read_layout(dir: &Path) -> Result<LayoutContent> {
    let bad = |message: String| OciError::Layout {
        dir: dir.to_path_buf(),
        message,
    };
    let layout_file = dir.join("oci-layout");
    let layout: OciLayoutFile = match std::fs::read(&layout_file) {
        Ok(bytes) => from_json("oci-layout", &bytes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad("not an OCI image layout (no oci-layout file)".into()));
        }
        Err(e) => {
            return Err(OciError::io(
                format!("reading {}", layout_file.display()),
                e,
            ));
        }
    };
    if layout.image_layout_version != LAYOUT_VERSION {
        return Err(bad(format!(
            "unsupported imageLayoutVersion {}",
            layout.image_layout_version
        )));
    }
    let index_path = dir.join("index.json");
    let index_bytes = std::fs::read(&index_path)
        .map_err(|e| OciError::io(format!("reading {}", index_path.display()), e))?;
    let index: ImageIndex = from_json("index.json", &index_bytes)?;
    let [top] = index.manifests.as_slice() else {
        return Err(bad(format!(
            "index.json lists {} images; exactly one is expected",
            index.manifests.len()
        )));
    };
    let ref_name = top.annotations.get(annotation::REF_NAME).cloned();
    let top_blob = read_blob(dir, top)?;
    let manifests: Vec<Descriptor> = match top.media_type.as_str() {
        MEDIA_TYPE_INDEX => from_json::<ImageIndex>("image index", &top_blob.bytes)?.manifests,
        MEDIA_TYPE_MANIFEST => vec![top.clone()],
        other => {
            return Err(OciError::UnsupportedMediaType {
                what: "the image in index.json".into(),
                media_type: other.to_string(),
            });
        }
    };
    let images = manifests
        .iter()
        .map(|m| {
            if m.media_type != MEDIA_TYPE_MANIFEST {
                return Err(OciError::UnsupportedMediaType {
                    what: format!("manifest {}", m.digest),
                    media_type: m.media_type.clone(),
                });
            }
            let manifest = read_blob(dir, m)?;
            let parsed: ImageManifest = from_json("image manifest", &manifest.bytes)?;
            let config = read_blob(dir, &parsed.config)?;
            let layers = parsed
                .layers
                .iter()
                .map(|l| read_blob(dir, l))
                .collect::<Result<Vec<_>>>()?;
            Ok(LocalImage {
                manifest,
                config,
                layers,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LayoutContent {
        top: top_blob,
        ref_name,
        images,
    })
}

fn read_blob(dir: &Path, descriptor: &Descriptor) -> Result<Blob> {
    let digest = Digest::parse(&descriptor.digest)?;
    let path = dir.join("blobs").join("sha256").join(digest.hex());
    let bytes = std::fs::read(&path)
        .map_err(|e| OciError::io(format!("reading blob {}", path.display()), e))?;
    let what = format!("blob {} in {}", descriptor.digest, dir.display());
    if bytes.len() as u64 != descriptor.size {
        return Err(OciError::SizeMismatch {
            what,
            expected: descriptor.size,
            actual: bytes.len() as u64,
        });
    }
    digest.verify(&what, &bytes)?;
    Ok(Blob {
        descriptor: descriptor.clone(),
        bytes,
    })
}

//! Unpacks verified layers into a root directory as a node does for an image volume: each layer's uncompressed
//! content is checked against its `diff_id` first, entries may not leave the root, whiteouts delete, and the
//! result appears at the output path only when complete.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

use crate::digest::Digest;
use crate::error::{OciError, Result};
use crate::layout::{commit_dir, staging_dir};
use crate::spec::{MEDIA_TYPE_DOCKER_LAYER_GZIP, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR};

/// Uncompressed layers larger than this are refused (a decompression bomb guard; extension images are small).
const MAX_LAYER_BYTES: u64 = 4 << 30;

/// A downloaded layer, its compressed digest already verified.
#[derive(Debug, Clone)]
pub struct PulledLayer {
    pub what: String,
    pub media_type: String,
    pub blob: Vec<u8>,
    pub diff_id: Digest,
}

/// The pull target must not exist, or be an empty directory (which the unpacked tree replaces).
pub fn check_pull_target(out: &Path) -> Result<()> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OciError::io(format!("inspecting {}", out.display()), e)),
        Ok(meta) if meta.is_dir() => {
            let mut entries = std::fs::read_dir(out)
                .map_err(|e| OciError::io(format!("listing {}", out.display()), e))?;
            if entries.next().is_none() {
                Ok(())
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

/// Unpacks `layers` in order into `out`; returns the number of entries written.
pub fn unpack_image(layers: &[PulledLayer], out: &Path) -> Result<usize> {
    check_pull_target(out)?;
    let replace = out.exists();
    let staging = staging_dir(out)?;
    let mut entries = 0;
    for layer in layers {
        let tar = decompress(layer)?;
        let actual = Digest::of(&tar);
        if actual != layer.diff_id {
            return Err(OciError::DigestMismatch {
                what: format!("uncompressed {} (diff_id)", layer.what),
                expected: layer.diff_id.to_string(),
                actual: actual.to_string(),
            });
        }
        entries += unpack_tar(&tar, staging.path(), &layer.what)?;
    }
    // Image volumes are readable by the container's user: keep the root traversable whatever the umask.
    set_mode(staging.path(), 0o755)?;
    commit_dir(staging, out, replace)?;
    Ok(entries)
}

fn decompress(layer: &PulledLayer) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let read = match layer.media_type.as_str() {
        MEDIA_TYPE_LAYER_GZIP | MEDIA_TYPE_DOCKER_LAYER_GZIP => {
            GzDecoder::new(layer.blob.as_slice())
                .take(MAX_LAYER_BYTES + 1)
                .read_to_end(&mut out)
        }
        MEDIA_TYPE_LAYER_TAR => layer
            .blob
            .as_slice()
            .take(MAX_LAYER_BYTES + 1)
            .read_to_end(&mut out),
        other => {
            return Err(OciError::UnsupportedMediaType {
                what: layer.what.clone(),
                media_type: other.to_string(),
            });
        }
    };
    read.map_err(|e| OciError::io(format!("decompressing {}", layer.what), e))?;
    if out.len() as u64 > MAX_LAYER_BYTES {
        return Err(OciError::InvalidInput(format!(
            "{} is larger than {MAX_LAYER_BYTES} bytes uncompressed",
            layer.what
        )));
    }
    Ok(out)
}

fn unpack_tar(tar: &[u8], root: &Path, what: &str) -> Result<usize> {
    let io = |e| OciError::io(format!("unpacking {what}"), e);
    let mut archive = tar::Archive::new(tar);
    let mut count = 0;
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let raw = entry.path().map_err(io)?.into_owned();
        let rel = safe_relative(&raw).ok_or_else(|| OciError::UnsafePath {
            layer: what.to_string(),
            path: raw.display().to_string(),
        })?;
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(hidden) = name.strip_prefix(".wh.") {
            apply_whiteout(root, &rel, hidden)?;
            continue;
        }
        let kind = entry.header().entry_type();
        if !(kind.is_dir() || kind.is_file() || kind.is_symlink() || kind.is_hard_link()) {
            return Err(OciError::InvalidInput(format!(
                "{what}: entry '{}' is a {kind:?}; only files, directories and links are unpacked",
                rel.display()
            )));
        }
        if kind.is_hard_link() {
            let target = entry.link_name().map_err(io)?.map(|t| t.into_owned());
            if target.as_deref().and_then(safe_relative).is_none() {
                return Err(OciError::UnsafePath {
                    layer: what.to_string(),
                    path: format!("{} (hard link target)", rel.display()),
                });
            }
        }
        entry.set_preserve_permissions(true);
        entry.set_preserve_mtime(true);
        entry.set_unpack_xattrs(false);
        // unpack_in refuses (returns false) paths that would land outside the root, through symlinks included.
        if !entry.unpack_in(root).map_err(io)? {
            return Err(OciError::UnsafePath {
                layer: what.to_string(),
                path: raw.display().to_string(),
            });
        }
        count += 1;
    }
    Ok(count)
}

/// The path relative to the root, or `None` when it is absolute or climbs with `..`. `./` parts are dropped.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// `.wh.<name>` deletes `<name>` from lower layers; `.wh..wh..opq` empties its directory.
fn apply_whiteout(root: &Path, rel: &Path, hidden: &str) -> Result<()> {
    let dir = root.join(rel.parent().unwrap_or(Path::new("")));
    let remove = |p: &Path| -> Result<()> {
        let result = match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
            Ok(_) => std::fs::remove_file(p),
            Err(_) => Ok(()),
        };
        result.map_err(|e| OciError::io(format!("applying whiteout {}", rel.display()), e))
    };
    if hidden == ".wh..opq" {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                remove(&e.path())?;
            }
        }
        return Ok(());
    }
    remove(&dir.join(hidden))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| OciError::io(format!("chmod {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{FileMode, LayerBuilder};

    fn pulled(builder: &LayerBuilder) -> PulledLayer {
        let layer = builder.build(0).expect("layer");
        PulledLayer {
            what: "layer 0".into(),
            media_type: layer.media_type.to_string(),
            blob: layer.blob,
            diff_id: layer.diff_id,
        }
    }

    #[test]
    fn unpacks_into_a_fresh_directory_with_modes() {
        use std::os::unix::fs::PermissionsExt;
        let mut b = LayerBuilder::new();
        b.file("lib/x.so", FileMode::Executable, b"so".to_vec())
            .expect("file");
        b.file("licenses/LICENSE", FileMode::Regular, b"MIT".to_vec())
            .expect("file");
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("rootfs");
        let n = unpack_image(&[pulled(&b)], &out).expect("unpack");
        assert_eq!(n, 4);
        assert_eq!(std::fs::read(out.join("lib/x.so")).expect("read"), b"so");
        let mode = std::fs::metadata(out.join("lib/x.so"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o755);
    }

    #[test]
    fn wrong_diff_id_leaves_no_output() {
        let mut b = LayerBuilder::new();
        b.file("a", FileMode::Regular, b"1".to_vec()).expect("file");
        let mut layer = pulled(&b);
        layer.diff_id = Digest::of(b"something else");
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("rootfs");
        let err = unpack_image(&[layer], &out).expect_err("mismatch");
        assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
        assert!(!out.exists());
        assert_eq!(
            std::fs::read_dir(tmp.path()).expect("ls").count(),
            0,
            "no staging directory left"
        );
    }

    #[test]
    fn escaping_paths_are_refused() {
        // Hand-made tar with a `../evil` entry (the layer builder would refuse to write one).
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        {
            let name = b"../evil";
            let gnu = h.as_gnu_mut().expect("gnu");
            gnu.name[..name.len()].copy_from_slice(name);
        }
        h.set_cksum();
        builder.append(&h, &b"x"[..]).expect("append");
        let tar = builder.into_inner().expect("tar");
        let layer = PulledLayer {
            what: "layer 0".into(),
            media_type: MEDIA_TYPE_LAYER_TAR.into(),
            diff_id: Digest::of(&tar),
            blob: tar,
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("rootfs");
        let err = unpack_image(&[layer], &out).expect_err("unsafe");
        assert!(matches!(err, OciError::UnsafePath { .. }), "{err}");
        assert!(!out.exists() && !tmp.path().join("evil").exists());
    }

    #[test]
    fn a_failed_pull_creates_no_parent_directories() {
        let mut b = LayerBuilder::new();
        b.file("a", FileMode::Regular, b"1".to_vec()).expect("file");
        let mut layer = pulled(&b);
        layer.diff_id = Digest::of(b"other");
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("extensions/name");
        assert!(unpack_image(&[layer], &out).is_err());
        assert_eq!(std::fs::read_dir(tmp.path()).expect("ls").count(), 0);
        // And a successful one creates them.
        unpack_image(&[pulled(&b)], &out).expect("unpack");
        assert_eq!(std::fs::read(out.join("a")).expect("read"), b"1");
    }

    #[test]
    fn non_empty_target_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::write(tmp.path().join("keep"), b"x").expect("write");
        assert!(matches!(
            check_pull_target(tmp.path()),
            Err(OciError::OutputExists { .. })
        ));
        assert!(check_pull_target(&tmp.path().join("absent")).is_ok());
    }
}

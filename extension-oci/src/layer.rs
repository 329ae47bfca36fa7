//! Reproducible image layers: a tree of directories and files written as a tar archive with sorted entries, one
//! fixed timestamp, owner 0:0, normalized modes and no extended headers, then gzip-compressed with a fixed header
//! (no name, mtime 0) and a fixed level (6, the zlib default).

use std::collections::BTreeMap;
use std::io::Write;

use flate2::{Compression, GzBuilder};

use crate::digest::Digest;
use crate::error::{OciError, Result};
use crate::spec::MEDIA_TYPE_LAYER_GZIP;

/// A regular file's mode in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// 0644.
    Regular,
    /// 0755.
    Executable,
}

impl FileMode {
    fn bits(self) -> u32 {
        match self {
            FileMode::Regular => 0o644,
            FileMode::Executable => 0o755,
        }
    }
}

const DIR_MODE: u32 = 0o755;

#[derive(Debug, Clone)]
enum Node {
    Dir,
    File { mode: FileMode, data: Vec<u8> },
}

/// The content of one layer, keyed by normalized relative path (sorted, so order never depends on the caller).
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    nodes: BTreeMap<String, Node>,
}

/// A finished layer: the compressed blob and its two identities.
#[derive(Debug, Clone)]
pub struct Layer {
    pub media_type: &'static str,
    /// The gzip-compressed tar (what is pushed).
    pub blob: Vec<u8>,
    /// Digest of `blob` (the manifest's layer descriptor).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// The files in the layer (relative paths), for logs and reports.
    pub files: Vec<String>,
}

impl LayerBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str) -> Result<&mut Self> {
        let path = normalize(path)?;
        self.add_parents(&path)?;
        match self.nodes.get(&path) {
            Some(Node::File { .. }) => {
                return Err(OciError::InvalidInput(format!(
                    "'{path}' is already a file in the layer"
                )));
            }
            Some(Node::Dir) => {}
            None => {
                self.nodes.insert(path, Node::Dir);
            }
        }
        Ok(self)
    }

    /// Adds a regular file (and its parent directories). Adding the same path twice is an error.
    pub fn file(&mut self, path: &str, mode: FileMode, data: Vec<u8>) -> Result<&mut Self> {
        let path = normalize(path)?;
        self.add_parents(&path)?;
        if self.nodes.contains_key(&path) {
            return Err(OciError::InvalidInput(format!(
                "'{path}' is added to the layer twice"
            )));
        }
        self.nodes.insert(path, Node::File { mode, data });
        Ok(self)
    }

    fn add_parents(&mut self, path: &str) -> Result<()> {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            let parent = &path[..end + slash];
            match self.nodes.get(parent) {
                Some(Node::File { .. }) => {
                    return Err(OciError::InvalidInput(format!(
                        "'{parent}' is a file, so '{path}' cannot be under it"
                    )));
                }
                Some(Node::Dir) => {}
                None => {
                    self.nodes.insert(parent.to_string(), Node::Dir);
                }
            }
            end += slash + 1;
        }
        Ok(())
    }

    /// Writes the layer. `mtime` (seconds since 1970) is the timestamp of every entry.
    pub fn build(&self, mtime: u64) -> Result<Layer> {
        let tar = self.tar(mtime)?;
        let diff_id = Digest::of(&tar);
        let mut gz = GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Vec::new(), Compression::default());
        gz.write_all(&tar)
            .map_err(|e| OciError::io("compressing a layer", e))?;
        let blob = gz
            .finish()
            .map_err(|e| OciError::io("compressing a layer", e))?;
        let files = self
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::File { .. }))
            .map(|(p, _)| p.clone())
            .collect();
        Ok(Layer {
            media_type: MEDIA_TYPE_LAYER_GZIP,
            digest: Digest::of(&blob),
            diff_id,
            blob,
            files,
        })
    }

    fn tar(&self, mtime: u64) -> Result<Vec<u8>> {
        let err = |e| OciError::io("writing a layer archive", e);
        let mut builder = tar::Builder::new(Vec::new());
        for (path, node) in &self.nodes {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(mtime);
            match node {
                Node::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(DIR_MODE);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(err)?;
                }
                Node::File { mode, data } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(mode.bits());
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, path, data.as_slice())
                        .map_err(err)?;
                }
            }
        }
        builder.into_inner().map_err(err)
    }
}

/// A relative path with single `/` separators and no `.`/`..` components; a leading `/` is dropped.
fn normalize(path: &str) -> Result<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(OciError::InvalidInput(format!(
            "'{path}' is not a path inside the image"
        )));
    }
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(OciError::InvalidInput(format!(
            "'{path}' must not contain '.' or '..' components"
        )));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar: &[u8]) -> Vec<(String, u32, u64, u64)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").to_string_lossy().into_owned(),
                    h.mode().expect("mode"),
                    h.mtime().expect("mtime"),
                    u64::from(h.uid().expect("uid") as u32),
                )
            })
            .collect()
    }

    #[test]
    fn entries_are_sorted_with_parents_first_and_fixed_metadata() {
        let mut b = LayerBuilder::new();
        b.file(
            "/share/extension/x.control",
            FileMode::Regular,
            b"c".to_vec(),
        )
        .expect("file");
        b.file("lib/x.so", FileMode::Executable, b"elf".to_vec())
            .expect("file");
        b.dir("system").expect("dir");
        let tar = b.tar(42).expect("tar");
        let got = entries(&tar);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "lib/",
                "lib/x.so",
                "share/",
                "share/extension/",
                "share/extension/x.control",
                "system/"
            ]
        );
        assert!(got.iter().all(|e| e.2 == 42 && e.3 == 0));
        assert_eq!(got[1].1, 0o755);
        assert_eq!(got[4].1, 0o644);
    }

    #[test]
    fn the_same_content_in_another_order_gives_the_same_digests() {
        let mut a = LayerBuilder::new();
        a.file("a/1", FileMode::Regular, b"1".to_vec())
            .expect("file");
        a.file("b/2", FileMode::Regular, b"2".to_vec())
            .expect("file");
        let mut b = LayerBuilder::new();
        b.file("b/2", FileMode::Regular, b"2".to_vec())
            .expect("file");
        b.file("a/1", FileMode::Regular, b"1".to_vec())
            .expect("file");
        let (la, lb) = (a.build(0).expect("a"), b.build(0).expect("b"));
        assert_eq!(la.digest, lb.digest);
        assert_eq!(la.diff_id, lb.diff_id);
        // A different timestamp is a different layer.
        assert_ne!(a.build(1).expect("a1").diff_id, la.diff_id);
    }

    #[test]
    fn gzip_header_has_no_name_and_no_time() {
        let layer = LayerBuilder::new()
            .dir("x")
            .expect("dir")
            .build(0)
            .expect("layer");
        // ID1 ID2 CM FLG MTIME(4) XFL OS
        assert_eq!(&layer.blob[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(layer.blob[3], 0, "no FNAME/FCOMMENT/FEXTRA flags");
        assert_eq!(&layer.blob[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn unsafe_and_conflicting_paths_are_refused() {
        let mut b = LayerBuilder::new();
        assert!(b.file("../etc/passwd", FileMode::Regular, vec![]).is_err());
        assert!(b.file("", FileMode::Regular, vec![]).is_err());
        b.file("a", FileMode::Regular, vec![]).expect("file");
        assert!(b.file("a/b", FileMode::Regular, vec![]).is_err());
        assert!(b.file("a", FileMode::Regular, vec![]).is_err());
    }

    #[test]
    fn long_paths_survive() {
        let long = format!("licenses/{}", "n".repeat(150));
        let mut b = LayerBuilder::new();
        b.file(&long, FileMode::Regular, b"x".to_vec())
            .expect("file");
        let names: Vec<String> = entries(&b.tar(0).expect("tar"))
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(names, ["licenses/".to_string(), long]);
    }
}

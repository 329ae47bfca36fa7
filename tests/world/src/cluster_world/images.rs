//! The world's container images, built here as OCI image layouts with pgrator's own OCI builder (no docker, no
//! registry download) and loaded into the node's containerd:
//! - the pod sandbox image: the static `pause` program;
//! - CloudNativePG's image: its `manager` at `/operator/manager_<arch>` (where the operator looks for the instance
//!   managers it offers) and `/manager`, as CNPG's own image is laid out;
//! - PostgreSQL 18 (and PgBouncer): the Debian root filesystem of the `pgroot` part, PostgreSQL's binaries on PATH,
//!   user 26 as in CNPG's system images.
//!
//! Every image is named under `pgrator.test/`, a name no registry answers: with `IfNotPresent` the kubelet uses the
//! loaded image and never tries to pull.

use std::path::{Path, PathBuf};
use std::process::Command;

use pgrator_extension_oci::Arch;
use pgrator_extension_oci::digest::Digest;
use pgrator_extension_oci::image::{ImageInput, build_image, build_index};
use pgrator_extension_oci::layer::Layer;
use pgrator_extension_oci::layout::write_layout;
use pgrator_extension_oci::spec::{Annotations, ContainerConfig, MEDIA_TYPE_LAYER_TAR};

use crate::error::{Result, WorldError};

/// What an image is made of: its layers (tar files, lowest first) and how its container runs.
pub struct ImageRecipe<'a> {
    /// Full name, `pgrator.test/<name>:<tag>`.
    pub name: &'a str,
    pub layer_tars: Vec<&'a Path>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
}

/// Writes `recipe` as an OCI layout and packs it as an archive `ctr images import` takes; returns the archive.
pub fn build_archive(recipe: &ImageRecipe<'_>, work: &Path) -> Result<PathBuf> {
    let (_, tag) = recipe
        .name
        .rsplit_once(':')
        .ok_or_else(|| invalid(recipe.name, "has no tag"))?;
    // Uncompressed: the layers are large and local; compressing them would only cost time.
    let mut layers = Vec::new();
    for path in &recipe.layer_tars {
        let tar = std::fs::read(path)
            .map_err(|e| WorldError::io(format!("reading {}", path.display()), e))?;
        let digest = Digest::of(&tar);
        layers.push(Layer {
            media_type: MEDIA_TYPE_LAYER_TAR,
            blob: tar,
            digest,
            diff_id: digest,
            files: Vec::new(),
        });
    }
    let arch = Arch::host().ok_or_else(|| {
        invalid(
            recipe.name,
            "is for a machine architecture pgrator does not build",
        )
    })?;
    let image = build_image(ImageInput {
        arch,
        layers,
        container: ContainerConfig {
            user: recipe.user.clone(),
            env: recipe.env.clone(),
            entrypoint: recipe.entrypoint.clone(),
            cmd: Vec::new(),
            working_dir: Some("/".to_string()),
            labels: Annotations::new(),
        },
        created: "1970-01-01T00:00:00Z".to_string(),
        annotations: Annotations::new(),
        created_by: "pgrator-world".to_string(),
    })
    .map_err(|e| oci(recipe.name, e))?;
    let set = build_index(vec![image], Annotations::new()).map_err(|e| oci(recipe.name, e))?;
    let file_name = recipe.name.replace(['/', ':'], "_");
    let layout = work.join(&file_name);
    write_layout(&layout, &set, tag).map_err(|e| oci(recipe.name, e))?;
    name_for_containerd(&layout, recipe.name)?;
    let archive = work.join(format!("{file_name}.tar"));
    tar_dir(&layout, &archive)?;
    std::fs::remove_dir_all(&layout).map_err(|e| WorldError::io("removing an image layout", e))?;
    Ok(archive)
}

/// Packs an OCI layout written by pgrator's builders (e.g. the validator's extension image) as an archive that
/// containerd imports under `name`.
pub fn archive_from_layout(layout: &Path, name: &str, out: &Path) -> Result<()> {
    let copy = out.with_extension("layout");
    let _ = std::fs::remove_dir_all(&copy);
    let status = Command::new("cp")
        .arg("-r")
        .arg(layout)
        .arg(&copy)
        .status()
        .map_err(|e| WorldError::io("copying an image layout", e))?;
    if !status.success() {
        return Err(invalid(name, "could not be copied"));
    }
    name_for_containerd(&copy, name)?;
    tar_dir(&copy, out)?;
    std::fs::remove_dir_all(&copy).map_err(|e| WorldError::io("removing an image layout", e))
}

/// containerd names an imported image after the `io.containerd.image.name` annotation of the layout's index entry.
fn name_for_containerd(layout: &Path, name: &str) -> Result<()> {
    let path = layout.join("index.json");
    let text = std::fs::read(&path).map_err(|e| WorldError::io("reading index.json", e))?;
    let mut index: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| invalid(name, &format!("index.json: {e}")))?;
    let entries = index["manifests"]
        .as_array_mut()
        .ok_or_else(|| invalid(name, "index.json lists no manifests"))?;
    for entry in entries {
        entry["annotations"]["io.containerd.image.name"] = serde_json::Value::from(name);
    }
    std::fs::write(&path, index.to_string()).map_err(|e| WorldError::io("writing index.json", e))
}

/// A one-layer tar of `dir`'s content, deterministic (sorted, owned by root, fixed times).
pub fn tar_dir(dir: &Path, out: &Path) -> Result<()> {
    let status = Command::new("tar")
        .arg("--create")
        .arg(format!("--file={}", out.display()))
        .arg(format!("--directory={}", dir.display()))
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            ".",
        ])
        .status()
        .map_err(|e| WorldError::io("running tar", e))?;
    if !status.success() {
        return Err(WorldError::Service {
            service: "world images".into(),
            message: format!("tar of {} exited with {status}", dir.display()),
        });
    }
    Ok(())
}

fn invalid(name: &str, why: &str) -> WorldError {
    WorldError::Service {
        service: "world images".into(),
        message: format!("image {name} {why}"),
    }
}

fn oci(name: &str, e: pgrator_extension_oci::OciError) -> WorldError {
    invalid(name, &format!("could not be built: {e}"))
}

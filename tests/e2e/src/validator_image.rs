//! The validator the way a node gets it: built into its extension image, pushed to a registry of the test world,
//! pulled back by digest into an empty `/extensions/pgrator-validator` directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pgrator_extension_oci::extension::{ExtensionSpec, build_extension_layout};
use pgrator_extension_oci::registry::{RegistryOptions, pull_image, push_layout};
use pgrator_extension_oci::{Arch, Distro};
use pgrator_world::registry::Registry;

use crate::oauth_db::{VALIDATOR_NAME, validator_extension_files, validator_lib};

/// The extension's name in the Cluster: mounted at `/extensions/pgrator-validator`.
pub const EXTENSION: &str = "pgrator-validator";

/// The pulled image: where it is mounted, and the reference (`registry/repo:tag@digest`) the operator is given.
pub struct PulledValidator {
    pub mount: PathBuf,
    pub reference: String,
}

/// What the validator's extension image is made of, for this machine's architecture: the module as
/// `lib/pgrator_validator.so`, its SQL files in `share/extension`, no extra system libraries.
pub fn validator_spec(arch: Arch) -> Result<ExtensionSpec> {
    Ok(ExtensionSpec {
        name: EXTENSION.into(),
        version: "0.1.0".into(),
        distro: Distro::Bookworm,
        libraries: vec![(arch, validator_lib()?)],
        library_file_name: Some(format!("{VALIDATOR_NAME}.so")),
        share_files: validator_extension_files()?,
        license_files: vec![],
        spdx_license: Some("MIT".into()),
        library_search_path: vec![],
        source: None,
        revision: None,
        epoch: 0,
    })
}

/// Builds, pushes to `registry` and pulls the validator's image under `work/extensions/pgrator-validator`.
pub async fn pull_validator(registry: &Registry, work: &Path) -> Result<PulledValidator> {
    let arch = Arch::host().context("the tests run on amd64 or arm64")?;
    let spec = validator_spec(arch)?;
    let layout = work.join("layout");
    build_extension_layout(&spec, &layout).context("building the validator image")?;
    let options = RegistryOptions {
        ca_file: registry.ca_path(),
        insecure_http: !registry.is_tls(),
        ..RegistryOptions::default()
    };
    let pushed = push_layout(
        &layout,
        &format!("{}/pgrator/{EXTENSION}", registry.address()),
        &options,
    )
    .await
    .context("pushing the validator image")?;
    let extensions = work.join("extensions");
    let mount = extensions.join(EXTENSION);
    std::fs::create_dir_all(&mount)?;
    pull_image(&pushed.reference, &mount, &options, arch)
        .await
        .context("pulling the validator image by digest")?;
    use std::os::unix::fs::PermissionsExt;
    for dir in [work, extensions.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(PulledValidator {
        mount,
        reference: pushed.reference,
    })
}

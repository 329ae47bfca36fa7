//! `pgrator-image`: build the operator's container image as an OCI image layout (push it with
//! `pgrator-extension-oci push`, which handles any layout).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use pgrator_extension_oci::Arch;
use pgrator_extension_oci::cli::init_logging;
use pgrator_extension_oci::epoch::source_date_epoch;
use pgrator_image::{OperatorImageSpec, SYSTEM_CA_BUNDLE, build_operator_layout};

#[derive(Debug, Parser)]
#[command(
    disable_version_flag = true,
    about = "Builds the pgrator operator image (program, CA certificates, user 65532) as an OCI layout"
)]
struct Cli {
    /// The program, as PATH (this machine's architecture) or ARCH=PATH; repeat per architecture.
    #[arg(long = "binary", required = true, value_parser = pgrator_extension_oci::platform::arch_and_path)]
    binaries: Vec<(Arch, PathBuf)>,
    /// Name under /usr/local/bin (the entrypoint).
    #[arg(long, default_value = "pgrator")]
    name: String,
    /// Image version (the tag).
    #[arg(long)]
    version: String,
    /// Output directory (an OCI image layout; replaced if it is one already).
    #[arg(long)]
    out: PathBuf,
    /// Arguments after the entrypoint (the image's Cmd).
    #[arg(long = "arg")]
    args: Vec<String>,
    /// CA bundle to include.
    #[arg(long, default_value = SYSTEM_CA_BUNDLE)]
    ca_bundle: PathBuf,
    /// License file for /licenses (repeatable).
    #[arg(long = "license")]
    licenses: Vec<PathBuf>,
    #[arg(long)]
    spdx: Option<String>,
    #[arg(long)]
    source: Option<String>,
    #[arg(long)]
    revision: Option<String>,
}

fn main() -> anyhow::Result<()> {
    init_logging();
    let cli = Cli::parse();
    let spec = OperatorImageSpec {
        name: cli.name,
        version: cli.version,
        programs: cli.binaries,
        args: cli.args,
        ca_bundle: cli.ca_bundle,
        license_files: cli.licenses,
        spdx_license: cli.spdx,
        source: cli.source,
        revision: cli.revision,
        epoch: source_date_epoch()?,
    };
    let built = build_operator_layout(&spec, &cli.out).context("building the operator image")?;
    for image in &built.set.images {
        let size: u64 = image.layers.iter().map(|l| l.blob.len() as u64).sum();
        eprintln!(
            "{}: manifest {} ({size} bytes of layers)",
            image.platform, image.manifest.descriptor.digest
        );
    }
    eprintln!("tag {} written to {}", built.tag, cli.out.display());
    println!("{}", built.set.digest());
    Ok(())
}

//! `pgrator-extension-oci`: build a PostgreSQL 18 extension image for CloudNativePG, push it, pull it back.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pgrator_extension_oci::cli::{RegistryArgs, block_on, init_logging};
use pgrator_extension_oci::epoch::source_date_epoch;
use pgrator_extension_oci::extension::{ExtensionSpec, build_extension_layout};
use pgrator_extension_oci::registry::{pull_image, push_layout};
use pgrator_extension_oci::{Arch, Distro};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Builds, pushes and pulls PostgreSQL 18 extension images for CloudNativePG image volumes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an extension image (an image index with one image per architecture) as an OCI image layout.
    Build {
        /// The module, as PATH (the build machine's architecture) or ARCH=PATH (amd64, arm64); repeat per arch.
        #[arg(long = "library", required = true, value_parser = pgrator_extension_oci::platform::arch_and_path)]
        libraries: Vec<(Arch, PathBuf)>,
        /// File name under /lib (default: the library's file name), e.g. pgrator_validator.so.
        #[arg(long)]
        library_name: Option<String>,
        /// Extension name in the Cluster (mounted at /extensions/<name>).
        #[arg(long)]
        name: String,
        /// Extension version (the tag is <version>-18-<distro>).
        #[arg(long)]
        version: String,
        /// Debian release of the PostgreSQL image: bookworm or trixie.
        #[arg(long)]
        distro: Distro,
        /// Output directory (an OCI image layout; replaced if it is one already).
        #[arg(long)]
        out: PathBuf,
        /// Control or SQL file for /share/extension (repeatable).
        #[arg(long = "share")]
        share: Vec<PathBuf>,
        /// License file for /licenses (repeatable).
        #[arg(long = "license")]
        licenses: Vec<PathBuf>,
        /// SPDX license expression for the image annotation.
        #[arg(long)]
        spdx: Option<String>,
        /// Extra directory where ldd finds the module's libraries (repeatable).
        #[arg(long = "library-path")]
        library_path: Vec<PathBuf>,
        /// Source repository URL for the annotation.
        #[arg(long)]
        source: Option<String>,
        /// Source revision for the annotation.
        #[arg(long)]
        revision: Option<String>,
    },
    /// Push an image layout; prints registry/repository:tag@sha256:… on stdout.
    Push {
        #[arg(long)]
        layout: PathBuf,
        /// registry/repository[:tag] (default tag: the layout's).
        #[arg(long)]
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Pull an image by digest and unpack it into an empty directory, as a node mounts an image volume.
    Pull {
        /// registry/repository[:tag]@sha256:…
        #[arg(long)]
        reference: String,
        #[arg(long)]
        out: PathBuf,
        /// Architecture to pull from the index (default: this machine's).
        #[arg(long)]
        arch: Option<Arch>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

fn main() -> anyhow::Result<()> {
    init_logging();
    match Cli::parse().command {
        Command::Build {
            libraries,
            library_name,
            name,
            version,
            distro,
            out,
            share,
            licenses,
            spdx,
            library_path,
            source,
            revision,
        } => {
            let spec = ExtensionSpec {
                name,
                version,
                distro,
                libraries,
                library_file_name: library_name,
                share_files: share,
                license_files: licenses,
                spdx_license: spdx,
                library_search_path: library_path,
                source,
                revision,
                epoch: source_date_epoch()?,
            };
            let built =
                build_extension_layout(&spec, &out).context("building the extension image")?;
            for image in &built.set.images {
                let size: u64 = image.layers.iter().map(|l| l.blob.len() as u64).sum();
                eprintln!(
                    "{}: manifest {} ({} bytes of layers)",
                    image.platform, image.manifest.descriptor.digest, size
                );
            }
            for (arch, libs) in &built.bundled {
                let names: Vec<&str> = libs.iter().map(|l| l.soname.as_str()).collect();
                eprintln!("{arch}: /system holds {names:?}");
            }
            eprintln!("tag {} written to {}", built.tag, out.display());
            println!("{}", built.set.digest());
        }
        Command::Push {
            layout,
            reference,
            registry,
        } => {
            let options = registry.options()?;
            let pushed = block_on(push_layout(&layout, &reference, &options))?
                .context("pushing the image")?;
            eprintln!("uploaded {} new blobs", pushed.uploaded_blobs);
            println!("{}", pushed.reference);
        }
        Command::Pull {
            reference,
            out,
            arch,
            registry,
        } => {
            let options = registry.options()?;
            let arch = match arch {
                Some(a) => a,
                None => Arch::host()
                    .context("this machine's architecture is not amd64 or arm64; pass --arch")?,
            };
            let pulled = block_on(pull_image(&reference, &out, &options, arch))?
                .context("pulling the image")?;
            eprintln!(
                "{}: {} entries unpacked into {}",
                pulled.platform,
                pulled.entries,
                out.display()
            );
            println!("{}", pulled.manifest_digest);
        }
    }
    Ok(())
}

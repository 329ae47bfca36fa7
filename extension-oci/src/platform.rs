//! Target platforms: CPU architecture (as OCI and ELF name it) and the Debian release of the PostgreSQL image.

use std::fmt;
use std::str::FromStr;

/// A CPU architecture an image can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// The OCI / Go name (`platform.architecture`).
    pub fn oci_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The OCI `platform.variant`, where one is customary.
    pub fn oci_variant(self) -> Option<&'static str> {
        match self {
            Arch::Amd64 => None,
            Arch::Arm64 => Some("v8"),
        }
    }

    /// ELF `e_machine` of binaries for this architecture.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::Amd64 => 62,  // EM_X86_64
            Arch::Arm64 => 183, // EM_AARCH64
        }
    }

    pub fn elf_machine_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86-64",
            Arch::Arm64 => "AArch64",
        }
    }

    /// The architecture this program runs on, if it is one an image can target.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.oci_name())
    }
}

/// A platform name this builder does not know (its own error, so that the error module depends on this one and
/// not the other way round).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownPlatform(pub String);

impl FromStr for Arch {
    type Err = UnknownPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "amd64" | "x86_64" => Ok(Arch::Amd64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            other => Err(UnknownPlatform(format!(
                "unknown architecture '{other}' (supported: amd64, arm64)"
            ))),
        }
    }
}

/// The Debian release of the CloudNativePG PostgreSQL image an extension image is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    Bookworm,
    Trixie,
}

impl Distro {
    pub fn name(self) -> &'static str {
        match self {
            Distro::Bookworm => "bookworm",
            Distro::Trixie => "trixie",
        }
    }

    /// The glibc version the release ships: a module may not need a newer `GLIBC_x.y` symbol version.
    pub fn glibc(self) -> (u32, u32) {
        match self {
            Distro::Bookworm => (2, 36),
            Distro::Trixie => (2, 41),
        }
    }
}

impl fmt::Display for Distro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Distro {
    type Err = UnknownPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bookworm" => Ok(Distro::Bookworm),
            "trixie" => Ok(Distro::Trixie),
            other => Err(UnknownPlatform(format!(
                "unknown distribution '{other}' (supported: bookworm, trixie — the Debian releases of the CloudNativePG \
                 PostgreSQL images)"
            ))),
        }
    }
}

/// A command-line `ARCH=PATH` (or a bare `PATH`, for this machine's architecture): which file is for which platform.
pub fn arch_and_path(value: &str) -> Result<(Arch, std::path::PathBuf), String> {
    if let Some((arch, path)) = value.split_once('=') {
        let arch: Arch = arch.parse().map_err(|e: UnknownPlatform| e.to_string())?;
        return Ok((arch, std::path::PathBuf::from(path)));
    }
    let host =
        Arch::host().ok_or("this machine's architecture is not amd64 or arm64; use ARCH=PATH")?;
    Ok((host, std::path::PathBuf::from(value)))
}

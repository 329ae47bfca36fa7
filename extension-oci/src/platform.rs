//! Target platforms: CPU architecture (as OCI and ELF name it) and the Debian release of the PostgreSQL image.

use std::fmt;
use std::str::FromStr;

use crate::error::OciError;

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

impl FromStr for Arch {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "amd64" | "x86_64" => Ok(Arch::Amd64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            other => Err(OciError::InvalidInput(format!(
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
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bookworm" => Ok(Distro::Bookworm),
            "trixie" => Ok(Distro::Trixie),
            other => Err(OciError::InvalidInput(format!(
                "unknown distribution '{other}' (supported: bookworm, trixie — the Debian releases of the CloudNativePG \
                 PostgreSQL images)"
            ))),
        }
    }
}

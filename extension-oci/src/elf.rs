//! Checks that a file is a PostgreSQL module for the target platform before it goes into an image: an ELF shared
//! library for the right machine, exporting `Pg_magic_func`, needing no newer glibc than the target distribution.

use std::path::Path;

use goblin::elf::Elf;
use goblin::elf::header::{ELFCLASS64, ELFDATA2LSB, ET_DYN, ET_EXEC, ET_REL};

use crate::error::{OciError, Result};
use crate::platform::{Arch, Distro};

/// What the image builder needs to know about a checked module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The `DT_NEEDED` entries: the shared libraries the module links against directly.
    pub needed: Vec<String>,
    /// The newest `GLIBC_x.y` symbol version the module needs, if any.
    pub glibc_needed: Option<(u32, u32)>,
}

/// Reads and checks `path` as a PostgreSQL module for `arch` on `distro`.
pub fn inspect_module(path: &Path, arch: Arch, distro: Distro) -> Result<ModuleInfo> {
    let bytes = read_file(path)?;
    check_header(path, &bytes, arch, &[ET_DYN])?;
    let elf = parse(path, &bytes)?;
    if !exports(&elf, "Pg_magic_func") {
        return Err(OciError::NotPostgresModule {
            path: path.to_path_buf(),
        });
    }
    let glibc_needed = newest_glibc(&elf);
    if let Some(needed) = glibc_needed
        && needed > distro.glibc()
    {
        let (major, minor) = distro.glibc();
        return Err(OciError::GlibcTooNew {
            path: path.to_path_buf(),
            needed: format!("GLIBC_{}.{}", needed.0, needed.1),
            distro: distro.to_string(),
            available: format!("{major}.{minor}"),
        });
    }
    Ok(ModuleInfo {
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        glibc_needed,
    })
}

/// What the operator image builder needs to know about a checked program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutableInfo {
    /// `PT_INTERP`: the dynamic loader, `None` for a static binary.
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
}

/// Reads and checks `path` as a program for `arch` (a static or dynamically linked executable, PIE or not).
pub fn inspect_executable(path: &Path, arch: Arch) -> Result<ExecutableInfo> {
    let bytes = read_file(path)?;
    check_header(path, &bytes, arch, &[ET_EXEC, ET_DYN])?;
    let elf = parse(path, &bytes)?;
    if elf.entry == 0 {
        return Err(OciError::NotExecutable {
            path: path.to_path_buf(),
        });
    }
    Ok(ExecutableInfo {
        interpreter: elf.interpreter.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(OciError::LibraryMissing {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(OciError::io(format!("reading {}", path.display()), e)),
    }
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Elf<'a>> {
    Elf::parse(bytes).map_err(|e| OciError::BadElf {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The fixed-position fields of the ELF header, checked before a full parse so that a truncated or foreign file
/// gets a precise message. `types` are the accepted `e_type` values.
fn check_header(path: &Path, bytes: &[u8], arch: Arch, types: &[u16]) -> Result<()> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(OciError::NotElf {
            path: path.to_path_buf(),
        });
    }
    if bytes.len() < 20 {
        return Err(OciError::BadElf {
            path: path.to_path_buf(),
            message: format!(
                "the file is {} bytes long, shorter than an ELF header",
                bytes.len()
            ),
        });
    }
    let class = bytes[4];
    let data = bytes[5];
    let read_u16 = |at: usize| {
        let pair = [bytes[at], bytes[at + 1]];
        if data == ELFDATA2LSB {
            u16::from_le_bytes(pair)
        } else {
            u16::from_be_bytes(pair)
        }
    };
    let e_type = read_u16(16);
    let e_machine = read_u16(18);
    if e_machine != arch.elf_machine() || class != ELFCLASS64 || data != ELFDATA2LSB {
        let bits = if class == ELFCLASS64 {
            "64-bit"
        } else {
            "32-bit"
        };
        let endian = if data == ELFDATA2LSB {
            "little-endian"
        } else {
            "big-endian"
        };
        return Err(OciError::WrongArchitecture {
            path: path.to_path_buf(),
            found: format!("{} ({bits}, {endian})", machine_name(e_machine)),
            expected: arch,
            expected_machine: arch.elf_machine_name(),
        });
    }
    if !types.contains(&e_type) {
        let kind = match e_type {
            ET_EXEC => "executable (ET_EXEC)".to_string(),
            ET_REL => "relocatable object (ET_REL)".to_string(),
            other => format!("ELF file of type {other}"),
        };
        return Err(if types.contains(&ET_EXEC) {
            OciError::NotExecutable {
                path: path.to_path_buf(),
            }
        } else {
            OciError::NotSharedLibrary {
                path: path.to_path_buf(),
                kind,
            }
        });
    }
    Ok(())
}

fn machine_name(e_machine: u16) -> String {
    match e_machine {
        3 => "x86 (i386)".into(),
        8 => "MIPS".into(),
        20 => "PowerPC".into(),
        21 => "PowerPC64".into(),
        22 => "s390".into(),
        40 => "ARM (32-bit)".into(),
        62 => "x86-64".into(),
        183 => "AArch64".into(),
        243 => "RISC-V".into(),
        other => format!("ELF machine {other}"),
    }
}

/// Whether the dynamic symbol table defines `name` (a symbol PostgreSQL can look up with dlsym).
fn exports(elf: &Elf<'_>, name: &str) -> bool {
    elf.dynsyms
        .iter()
        .any(|sym| sym.st_shndx != 0 && elf.dynstrtab.get_at(sym.st_name) == Some(name))
}

/// The newest `GLIBC_x.y` version named in the version-needs section.
fn newest_glibc(elf: &Elf<'_>) -> Option<(u32, u32)> {
    let verneed = elf.verneed.as_ref()?;
    verneed
        .iter()
        .flat_map(|need| need.iter().collect::<Vec<_>>())
        .filter_map(|aux| elf.dynstrtab.get_at(aux.vna_name))
        .filter_map(parse_glibc_version)
        .max()
}

fn parse_glibc_version(name: &str) -> Option<(u32, u32)> {
    let version = name.strip_prefix("GLIBC_")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-byte ELF64 header with the given machine and type, nothing else.
    fn header(e_machine: u16, e_type: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = ELFCLASS64;
        h[5] = ELFDATA2LSB;
        h[6] = 1;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&e_machine.to_le_bytes());
        h
    }

    fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), bytes).expect("write");
        f
    }

    #[test]
    fn missing_file_is_named() {
        let err = inspect_module(
            Path::new("/nonexistent/x.so"),
            Arch::Amd64,
            Distro::Bookworm,
        )
        .expect_err("missing");
        assert!(matches!(err, OciError::LibraryMissing { .. }), "{err}");
    }

    #[test]
    fn text_file_is_not_elf() {
        let f = write_temp(b"#!/bin/sh\necho hi\n");
        let err = inspect_module(f.path(), Arch::Amd64, Distro::Bookworm).expect_err("not elf");
        assert!(matches!(err, OciError::NotElf { .. }), "{err}");
    }

    #[test]
    fn aarch64_library_is_refused_for_amd64() {
        let f = write_temp(&header(183, ET_DYN));
        let err = inspect_module(f.path(), Arch::Amd64, Distro::Bookworm).expect_err("wrong arch");
        let text = err.to_string();
        assert!(matches!(err, OciError::WrongArchitecture { .. }), "{text}");
        assert!(text.contains("AArch64") && text.contains("amd64"), "{text}");
    }

    #[test]
    fn executable_is_not_a_shared_library() {
        let f = write_temp(&header(62, ET_EXEC));
        let err = inspect_module(f.path(), Arch::Amd64, Distro::Bookworm).expect_err("exec");
        assert!(matches!(err, OciError::NotSharedLibrary { .. }), "{err}");
    }

    #[test]
    fn glibc_versions_parse() {
        assert_eq!(parse_glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(parse_glibc_version("GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(parse_glibc_version("GLIBC_PRIVATE"), None);
        assert_eq!(parse_glibc_version("GCC_3.0"), None);
    }
}

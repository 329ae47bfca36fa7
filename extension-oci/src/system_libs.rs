//! Which shared libraries go into the image's `/system` directory (CNPG `ld_library_path: [system]`).
//!
//! Decision (see README.md): a library is bundled when the module needs it (directly or through another
//! library, as `ldd` resolves it on the build machine) and it is not in [`STOCK_LIBRARIES`], the sonames that every
//! CloudNativePG PostgreSQL 18 Debian image (bookworm and trixie, `minimal` and `standard`) is sure to have.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::elf::ModuleInfo;
use crate::error::{OciError, Result};
use crate::platform::Arch;

/// Sonames present in every CloudNativePG PostgreSQL 18 Debian image: the image is `debian:<release>-slim` plus the
/// PGDG `postgresql-18` package and its dependencies, so these come from glibc and the Debian base, or from
/// packages `postgresql-18` depends on. Libraries whose soname changes between Debian releases (ICU, LDAP, LLVM)
/// are left out on purpose: a module needing them gets them bundled.
pub const STOCK_LIBRARIES: &[&str] = &[
    // The kernel's vDSO and the dynamic loaders.
    "linux-vdso.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    // glibc (libc6, essential).
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libresolv.so.2",
    "libutil.so.1",
    "libanl.so.1",
    "libmvec.so.1",
    // Debian base (required priority).
    "libgcc_s.so.1",
    "libcrypt.so.1",
    "libz.so.1",
    "libzstd.so.1",
    "liblzma.so.5",
    "libselinux.so.1",
    "libpcre2-8.so.0",
    "libsystemd.so.0",
    "libpam.so.0",
    "libuuid.so.1",
    // Dependencies of the postgresql-18 server package.
    "libstdc++.so.6",
    "libssl.so.3",
    "libcrypto.so.3",
    "libgssapi_krb5.so.2",
    "libkrb5.so.3",
    "libk5crypto.so.3",
    "libkrb5support.so.0",
    "libcom_err.so.2",
    "liblz4.so.1",
    "libxml2.so.2",
    "libxslt.so.1",
    "libpq.so.5",
];

/// Whether the stock PostgreSQL image already has the library with this soname.
pub fn is_stock(soname: &str) -> bool {
    STOCK_LIBRARIES.contains(&soname)
}

/// A library to copy into `/system`, under its soname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundledLibrary {
    pub soname: String,
    pub path: PathBuf,
}

/// The libraries `module` needs that the stock image lacks. For the build machine's architecture this asks `ldd`
/// (which sees the whole dependency tree; `search_path` is added to `LD_LIBRARY_PATH` for libraries outside the
/// system directories). For another architecture `ldd` cannot run, so only the direct `DT_NEEDED` entries are
/// checked and any that is not stock is an error.
pub fn libraries_to_bundle(
    module: &Path,
    arch: Arch,
    info: &ModuleInfo,
    search_path: &[PathBuf],
) -> Result<Vec<BundledLibrary>> {
    if Arch::host() != Some(arch) {
        let foreign: Vec<String> = info
            .needed
            .iter()
            .filter(|n| !is_stock(n))
            .cloned()
            .collect();
        if !foreign.is_empty() {
            return Err(OciError::ForeignDependencies {
                path: module.to_path_buf(),
                arch,
                libraries: foreign,
            });
        }
        return Ok(Vec::new());
    }
    let resolved = resolved_ldd(module, search_path)?;
    let mut bundle: Vec<BundledLibrary> = resolved
        .into_iter()
        .filter(|l| !is_stock(&l.soname))
        .filter_map(|l| {
            l.path.map(|path| BundledLibrary {
                soname: l.soname,
                path,
            })
        })
        .collect();
    bundle.sort_by(|a, b| a.soname.cmp(&b.soname));
    bundle.dedup_by(|a, b| a.soname == b.soname);
    Ok(bundle)
}

/// ldd's answer for `file`, failing with every library it could not find.
fn resolved_ldd(file: &Path, search_path: &[PathBuf]) -> Result<Vec<LddEntry>> {
    let entries = run_ldd(file, search_path)?;
    let missing: Vec<String> = entries
        .iter()
        .filter(|l| l.path.is_none())
        .map(|l| l.soname.clone())
        .collect();
    if missing.is_empty() {
        Ok(entries)
    } else {
        Err(OciError::UnresolvedDependencies {
            path: file.to_path_buf(),
            missing,
        })
    }
}

/// A shared library a program needs at run time, placed in the image where the loader looks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLibrary {
    /// Absolute path inside the image (the path ldd resolved, or the `PT_INTERP` path of the loader).
    pub image_path: String,
    /// The file on this machine (symlinks are followed when it is read).
    pub source: PathBuf,
}

/// Every shared library a dynamically linked program on this machine needs, the loader included, for an image
/// without a distribution underneath (`FROM scratch`). Fails when any library cannot be found.
pub fn runtime_libraries(program: &Path, search_path: &[PathBuf]) -> Result<Vec<RuntimeLibrary>> {
    let entries = resolved_ldd(program, search_path)?;
    let mut libs: Vec<RuntimeLibrary> = entries
        .into_iter()
        .filter_map(|l| l.path)
        // The vDSO is provided by the kernel, not a file.
        .filter(|p| p.is_absolute())
        .map(|p| RuntimeLibrary {
            image_path: p.display().to_string(),
            source: p,
        })
        .collect();
    libs.sort_by(|a, b| a.image_path.cmp(&b.image_path));
    libs.dedup_by(|a, b| a.image_path == b.image_path);
    Ok(libs)
}

/// One line of `ldd` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LddEntry {
    pub soname: String,
    /// `None` when ldd says "not found".
    pub path: Option<PathBuf>,
}

fn run_ldd(module: &Path, search_path: &[PathBuf]) -> Result<Vec<LddEntry>> {
    let mut cmd = Command::new("ldd");
    cmd.arg(module);
    if !search_path.is_empty() {
        let mut paths: Vec<PathBuf> = search_path.to_vec();
        if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
            paths.extend(std::env::split_paths(&existing));
        }
        let joined = std::env::join_paths(paths)
            .map_err(|e| OciError::InvalidInput(format!("library search path: {e}")))?;
        cmd.env("LD_LIBRARY_PATH", joined);
    }
    let out = cmd.output().map_err(|e| OciError::Ldd {
        path: module.to_path_buf(),
        message: format!("cannot run ldd (package libc-bin): {e}"),
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(OciError::Ldd {
            path: module.to_path_buf(),
            message: format!(
                "ldd exited with {}: {}{}",
                out.status,
                stdout.trim(),
                stderr.trim()
            ),
        });
    }
    Ok(parse_ldd(&stdout))
}

/// Parses ldd's lines: `soname => /path (0x…)`, `soname => not found`, `/lib64/ld-linux… (0x…)`,
/// `linux-vdso.so.1 (0x…)`, or `statically linked`.
pub fn parse_ldd(output: &str) -> Vec<LddEntry> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("statically linked"))
        .filter_map(|line| {
            if let Some((soname, rest)) = line.split_once("=>") {
                let rest = rest.trim();
                let path = if rest.starts_with("not found") {
                    None
                } else {
                    Some(PathBuf::from(
                        rest.split(" (").next().unwrap_or(rest).trim(),
                    ))
                };
                return Some(LddEntry {
                    soname: soname.trim().to_string(),
                    path,
                });
            }
            // The loader (an absolute path) or the vDSO: name only, always stock.
            let name = line.split(" (").next().unwrap_or(line).trim();
            let soname = Path::new(name).file_name()?.to_string_lossy().into_owned();
            Some(LddEntry {
                soname,
                path: Some(PathBuf::from(name)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\tlinux-vdso.so.1 (0x00007ffc)\n\
        \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f84)\n\
        \tlibfoo.so.2 => /opt/foo/lib/libfoo.so.2 (0x00007f85)\n\
        \tlibbar.so.1 => not found\n\
        \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f84)\n\
        \t/lib64/ld-linux-x86-64.so.2 (0x00007f84)\n";

    #[test]
    fn parses_every_kind_of_ldd_line() {
        let entries = parse_ldd(SAMPLE);
        let names: Vec<&str> = entries.iter().map(|e| e.soname.as_str()).collect();
        assert_eq!(
            names,
            [
                "linux-vdso.so.1",
                "libgcc_s.so.1",
                "libfoo.so.2",
                "libbar.so.1",
                "libc.so.6",
                "ld-linux-x86-64.so.2"
            ]
        );
        assert_eq!(
            entries[2].path.as_deref(),
            Some(Path::new("/opt/foo/lib/libfoo.so.2"))
        );
        assert_eq!(entries[3].path, None);
    }

    #[test]
    fn only_non_stock_libraries_are_bundled() {
        let bundled: Vec<String> = parse_ldd(SAMPLE)
            .into_iter()
            .filter(|e| !is_stock(&e.soname))
            .map(|e| e.soname)
            .collect();
        assert_eq!(bundled, ["libfoo.so.2", "libbar.so.1"]);
    }

    #[test]
    fn foreign_architecture_with_only_stock_needs_bundles_nothing() {
        let info = ModuleInfo {
            needed: vec!["libc.so.6".into(), "libgcc_s.so.1".into()],
            glibc_needed: None,
        };
        let other = Arch::ALL
            .into_iter()
            .find(|a| Some(*a) != Arch::host())
            .expect("another arch");
        assert_eq!(
            libraries_to_bundle(Path::new("/x.so"), other, &info, &[]).expect("ok"),
            Vec::new()
        );
        let info = ModuleInfo {
            needed: vec!["libc.so.6".into(), "libfoo.so.2".into()],
            glibc_needed: None,
        };
        let err =
            libraries_to_bundle(Path::new("/x.so"), other, &info, &[]).expect_err("foreign lib");
        assert!(err.to_string().contains("libfoo.so.2"), "{err}");
    }
}

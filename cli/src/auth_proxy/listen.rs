//! Where the proxy listens, so that only the developer can use it: by default a Unix socket in a directory only
//! they can open (and each peer's uid checked again on accept), TCP on 127.0.0.1 only on request and then with a
//! password made for this run. It never listens beyond the machine.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;

use crate::CliError;

/// This process's effective uid: the owner of a file it makes (portable to systems without /proc, and no unsafe
/// call to geteuid).
pub fn own_uid() -> Result<u32, CliError> {
    tempfile::tempfile()
        .and_then(|f| f.metadata())
        .map(|m| m.uid())
        .map_err(|e| CliError::Usage(format!("finding our own uid: {e}")))
}

/// The default socket directory for `namespace/name`: under `$XDG_RUNTIME_DIR` (private by the system) or
/// `/tmp/pgrator-<uid>`.
pub fn default_socket_dir(namespace: &str, name: &str) -> Result<PathBuf, CliError> {
    let base = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("pgrator"),
        None => PathBuf::from(format!("/tmp/pgrator-{}", own_uid()?)),
    };
    Ok(base.join(format!("{namespace}.{name}")))
}

/// Makes `dir` mode 0700 (its parent must exist), or checks an existing one: a directory (not a symlink) of ours
/// that nobody else can open. Anything else is refused, never reused: another local user may have planted it.
pub fn private_dir(dir: &Path) -> Result<(), CliError> {
    let uid = own_uid()?;
    {
        let d = dir;
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CliError::Usage(format!("making {}: {e}", d.display()))),
        }
        let meta = std::fs::symlink_metadata(d)
            .map_err(|e| CliError::Usage(format!("{}: {e}", d.display())))?;
        if !meta.file_type().is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return Err(CliError::Usage(format!(
                "{} is not a private directory of yours (a directory, owner uid {uid}, mode 0700; it is {}, \
                 uid {}, mode {:o}): the proxy's socket would not be yours alone",
                d.display(),
                if meta.file_type().is_dir() {
                    "a directory"
                } else {
                    "not a directory"
                },
                meta.uid(),
                meta.mode() & 0o777
            )));
        }
    }
    Ok(())
}

/// The socket's path as libpq names it: `<dir>/.s.PGSQL.<port>` (clients connect with `host=<dir> port=<port>`).
pub fn socket_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

/// Binds the Unix socket at `path` in a private directory, replacing a stale socket of a proxy that died.
pub fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, CliError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(CliError::Usage(format!(
                "{} exists and is not a socket",
                path.display()
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(CliError::Usage(format!(
                "another proxy is already listening on {}",
                path.display()
            )));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| CliError::Usage(format!("listening on {}: {e}", path.display())))?;
    // The directory already keeps others out; the socket's own mode says the same.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    Ok(listener)
}

/// A password for this run of the TCP listener: 24 random bytes, base64url.
pub fn run_password() -> Result<String, CliError> {
    use base64::Engine;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CliError::Usage("no randomness for the password".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).expect("meta").mode() & 0o777
    }

    #[test]
    fn the_socket_directory_is_made_private_and_a_shared_one_is_refused() {
        let temp = tempfile::tempdir().expect("temp");
        let dir = temp.path().join("pgrator/team.orders");
        assert!(private_dir(&dir).is_err(), "its parent must exist");
        private_dir(dir.parent().expect("parent")).expect("made");
        private_dir(&dir).expect("made");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(dir.parent().expect("parent")), 0o700);
        private_dir(&dir).expect("an existing private one is fine");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let e = private_dir(&dir).expect_err("a directory others can open");
        assert!(e.to_string().contains("mode 755"), "{e}");
        let link = temp.path().join("pgrator/link");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        assert!(private_dir(&link).is_err(), "a symlink is not used");
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_is_not() {
        let temp = tempfile::tempdir().expect("temp");
        let path = socket_path(temp.path(), 5432);
        assert!(path.ends_with(".s.PGSQL.5432"));
        let live = bind_socket(&path).expect("bind");
        assert_eq!(mode(&path), 0o600);
        let e = bind_socket(&path).expect_err("in use");
        assert!(e.to_string().contains("already listening"), "{e}");
        drop(live);
        bind_socket(&path).expect("a stale socket is replaced");
        let file = temp.path().join("plain");
        std::fs::write(&file, b"x").expect("file");
        assert!(bind_socket(&file).is_err(), "a file is not removed");
        assert_eq!(std::fs::read(&file).expect("kept"), b"x");
    }

    #[test]
    fn run_passwords_differ() {
        let (a, b) = (run_password().expect("a"), run_password().expect("b"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}

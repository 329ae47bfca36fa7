//! Where the installed parts live: the `world.env` file written by `tests/world/install.sh`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Result, WorldError};

/// Which installer part provides a key of `world.env`, for the error message when it is missing.
fn part_of(key: &str) -> &'static str {
    match key {
        "PGRATOR_PG_HOME" | "PGRX_PG_CONFIG_PATH" => "postgres",
        "PGRATOR_PSQL_HOME" => "psql",
        "PGRATOR_IDP_BIN" => "idp",
        "PGRATOR_REGISTRY_BIN" => "registry",
        "PGRATOR_CHROMIUM" | "PGRATOR_BROWSER_DIR" => "browser",
        "PGRATOR_CLIENTS_DIR" | "PGRATOR_PSQL15" => "clients",
        "PGRATOR_CRDS_DIR" => "crds",
        k if k.starts_with("PGRATOR_KUBE") || k.starts_with("PGRATOR_ETCD") => "kube",
        _ => "tools",
    }
}

/// The cache directory: `$PGRATOR_CACHE`, else `~/.cache/pgrator`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGRATOR_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache").join("pgrator")
}

/// The parsed `world.env`.
#[derive(Debug, Clone)]
pub struct WorldEnv {
    file: PathBuf,
    values: BTreeMap<String, String>,
}

impl WorldEnv {
    /// Reads `world.env` from the cache directory. A missing file is an empty world (every `require` then fails
    /// with the install command to run).
    pub fn load() -> Result<Self> {
        Self::load_from(&cache_dir().join("world.env"))
    }

    pub fn load_from(file: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(WorldError::io(format!("reading {}", file.display()), e)),
        };
        Ok(WorldEnv {
            file: file.to_path_buf(),
            values: parse(&text),
        })
    }

    /// The path recorded under `key`, which must exist on disk.
    pub fn require(&self, key: &str) -> Result<PathBuf> {
        let missing = || WorldError::NotInstalled {
            part: part_of(key),
            key: key.to_string(),
            env_file: self.file.clone(),
        };
        let value = self.values.get(key).ok_or_else(missing)?;
        let path = PathBuf::from(value);
        if !path.exists() {
            return Err(missing());
        }
        Ok(path)
    }

    /// The raw value under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_lines_win_and_comments_are_ignored() {
        let env = parse("# c\nA=1\nB = two\nA=3\n");
        assert_eq!(env.get("A").map(String::as_str), Some("3"));
        assert_eq!(env.get("B").map(String::as_str), Some("two"));
    }

    #[test]
    fn missing_key_names_the_install_command() {
        let env = WorldEnv {
            file: PathBuf::from("/x/world.env"),
            values: BTreeMap::new(),
        };
        let err = env
            .require("PGRATOR_PSQL_HOME")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("tests/world/install.sh psql"), "{err}");
    }
}

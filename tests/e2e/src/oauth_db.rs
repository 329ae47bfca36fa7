//! A PostgreSQL 18 server that authenticates with OAuth through our validator, against the test IdP: the setup
//! shared by the login tests and the demo.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pgrator_world::idp::{Idp, IdpConfig, defaults, scope_project_audience};
use pgrator_world::libpq::TokenClient;
use pgrator_world::postgres::{PgConfig, Postgres, conf_quote};
use pgrator_world::psql::{OAuthConnect, Psql, PsqlOutcome};

/// The name PostgreSQL loads the validator by (`oauth_validator_libraries`).
pub const VALIDATOR_NAME: &str = "pgrator_validator";
/// The pg_ident map the HBA line uses.
pub const IDENT_MAP: &str = "oauth";

/// The validator module built by `./just build-validator` (`PGRATOR_VALIDATOR_LIB`).
pub fn validator_lib() -> Result<PathBuf> {
    let path = std::env::var_os("PGRATOR_VALIDATOR_LIB").map(PathBuf::from).context(
        "PGRATOR_VALIDATOR_LIB is not set: build the validator with `./just build-validator` (the test recipes do)",
    )?;
    if !path.is_file() {
        bail!(
            "{} does not exist: build it with `./just build-validator`",
            path.display()
        );
    }
    Ok(path)
}

/// The validator's SQL extension files (control + scripts) in the source tree.
pub fn validator_extension_files() -> Result<Vec<PathBuf>> {
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../validator-ext/module");
    let mut files = vec![module.join(format!("{VALIDATOR_NAME}.control"))];
    for entry in std::fs::read_dir(module.join("sql"))? {
        files.push(entry?.path());
    }
    Ok(files)
}

/// Lays the module out the way an extension image does under `/extensions/<name>`: `lib/pgrator_validator.so`
/// and `share/extension/` (control and SQL files), readable by the unprivileged server.
pub fn stage_validator(dir: &Path) -> Result<()> {
    stage_validator_module(dir, &validator_lib()?)
}

/// The module built with its fault trigger by `./just build-validator-faults` (`PGRATOR_VALIDATOR_FAULTS_LIB`).
pub fn validator_faults_lib() -> Result<PathBuf> {
    let path = std::env::var_os("PGRATOR_VALIDATOR_FAULTS_LIB").map(PathBuf::from).context(
        "PGRATOR_VALIDATOR_FAULTS_LIB is not set: build it with `./just build-validator-faults` (`./just test` does)",
    )?;
    if !path.is_file() {
        bail!(
            "{} does not exist: build it with `./just build-validator-faults`",
            path.display()
        );
    }
    Ok(path)
}

/// As [`stage_validator`], with the module at `module`.
pub fn stage_validator_module(dir: &Path, module: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let lib_dir = dir.join("lib");
    let share_dir = dir.join("share");
    let ext_dir = share_dir.join("extension");
    std::fs::create_dir_all(&lib_dir)?;
    std::fs::create_dir_all(&ext_dir)?;
    let mut files = vec![(
        module.to_path_buf(),
        lib_dir.join(format!("{VALIDATOR_NAME}.so")),
    )];
    for f in validator_extension_files()? {
        let name = f.file_name().context("extension file name")?.to_owned();
        files.push((f, ext_dir.join(name)));
    }
    for (from, to) in files {
        std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644))?;
    }
    for d in [
        dir,
        lib_dir.as_path(),
        share_dir.as_path(),
        ext_dir.as_path(),
    ] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// The scopes the HBA line requires (and psql therefore asks for): the project in the audience, as Zitadel does.
pub fn hba_scope() -> String {
    format!("openid {}", scope_project_audience(defaults::PROJECT_ID))
}

/// PostgreSQL configured the way the operator and CNPG configure it for the validator extension mounted at
/// `extension_root` (`/extensions/<name>` in a pod): `dynamic_library_path` and `extension_control_path` extended
/// with its `lib` and `share`, `LD_LIBRARY_PATH` its `system`; the validator's settings; an `oauth` HBA line for
/// the IdP's issuer; and `ident` as the `oauth` map.
pub fn validator_pg_config(
    idp: &Idp,
    extension_root: &Path,
    ident: &[(&str, &str)],
    extra: PgConfig,
) -> PgConfig {
    let root = extension_root.display();
    let mut config = extra
        .setting(
            "dynamic_library_path",
            conf_quote(&format!("$libdir:{root}/lib")),
        )
        .setting(
            "extension_control_path",
            conf_quote(&format!("$system:{root}/share")),
        )
        .env("LD_LIBRARY_PATH", format!("{root}/system"))
        .setting("oauth_validator_libraries", conf_quote(VALIDATOR_NAME))
        .setting(
            "pgrator_validator.audience",
            conf_quote(defaults::PROJECT_ID),
        )
        .setting(
            "pgrator_validator.ca_file",
            conf_quote(&idp.ca_pem_path().to_string_lossy()),
        )
        .hba(format!(
            "host all all 127.0.0.1/32 oauth issuer=\"{}\" scope=\"{}\" map={IDENT_MAP}",
            idp.issuer(),
            hba_scope()
        ));
    for (identity, role) in ident {
        config = config.ident(format!("{IDENT_MAP} {identity} {role}"));
    }
    config
}

/// A file the unprivileged server can read (a secret or key file for a setting), in a temporary directory.
pub fn server_readable_file(name: &str, contents: &[u8]) -> Result<(tempfile::TempDir, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(name);
    std::fs::write(&path, contents)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    Ok((dir, path))
}

/// The IdP and a database that trusts it through the validator.
pub struct OAuthDb {
    pub idp: Idp,
    pub pg: Postgres,
    pub psql: Psql,
    pub trust_bundle: PathBuf,
    _ext: tempfile::TempDir,
}

impl OAuthDb {
    /// Starts the IdP and PostgreSQL with an `oauth` HBA line for the IdP's issuer, the validator loaded from a
    /// staged copy of the module, and `ident` as pg_ident.conf lines of the `oauth` map.
    pub fn start(ident: &[(&str, &str)], extra: PgConfig) -> Result<OAuthDb> {
        Self::start_with_module(&validator_lib()?, ident, extra)
    }

    /// As [`OAuthDb::start`], loading the validator module at `module`.
    pub fn start_with_module(
        module: &Path,
        ident: &[(&str, &str)],
        extra: PgConfig,
    ) -> Result<OAuthDb> {
        let idp = Idp::start(IdpConfig::default()).context("starting the IdP")?;
        let ext = tempfile::Builder::new().prefix("pgrator-ext-").tempdir()?;
        stage_validator_module(ext.path(), module)?;
        let config = validator_pg_config(&idp, ext.path(), ident, extra);
        let pg = Postgres::start(config).context("starting PostgreSQL 18")?;
        let trust_bundle = idp.ca().system_bundle_with_ca()?;
        Ok(OAuthDb {
            idp,
            pg,
            psql: Psql::locate()?,
            trust_bundle,
            _ext: ext,
        })
    }

    /// Where psql connects as `role`, with the IdP's psql client.
    pub fn connect_as(&self, role: &str, client_id: &str) -> OAuthConnect {
        OAuthConnect {
            host: self.pg.host().to_string(),
            port: self.pg.port(),
            dbname: "postgres".into(),
            user: role.to_string(),
            issuer: self.idp.issuer().to_string(),
            client_id: client_id.to_string(),
            scope: None,
        }
    }

    /// A token like the device flow gives alice for psql (audience and scopes the HBA line demands), minted by
    /// the IdP with `overrides` applied to its mint request (see tests/world/idp/README.md).
    pub fn mint_for_alice(&self, overrides: serde_json::Value) -> Result<String> {
        let mut request = serde_json::json!({
            "user": defaults::ALICE,
            "client_id": defaults::PSQL,
            "aud": [defaults::PSQL, defaults::PROJECT_ID],
            "scope": hba_scope(),
        });
        if let (Some(r), Some(o)) = (request.as_object_mut(), overrides.as_object()) {
            r.extend(o.clone());
        }
        Ok(self.idp.mint(&request)?.access_token)
    }

    /// Logs in as `role` presenting `token` (libpq, no device flow); the session user, or libpq's error.
    pub fn token_login(&self, role: &str, token: &str) -> std::result::Result<String, String> {
        let client = TokenClient::load().map_err(|e| e.to_string())?;
        let conn = client.connect(
            &self.connect_as(role, defaults::PSQL).conninfo(),
            token.as_bytes(),
        )?;
        conn.query_one("SELECT current_user")
    }

    /// Runs `sql` with the real psql as `role`; the device code psql prints is approved at the IdP as `person`.
    pub fn psql_login(&self, role: &str, person: &str, sql: &str) -> Result<PsqlOutcome> {
        self.psql_login_with(defaults::PSQL, role, person, sql)
    }

    /// As [`OAuthDb::psql_login`], with another OAuth client of the IdP (e.g. `psql-opaque`).
    pub fn psql_login_with(
        &self,
        client_id: &str,
        role: &str,
        person: &str,
        sql: &str,
    ) -> Result<PsqlOutcome> {
        let connect = self.connect_as(role, client_id);
        Ok(self.psql.oauth_sql(
            &connect,
            sql,
            &self.trust_bundle,
            Duration::from_secs(60),
            self.idp.approve_as(person),
        )?)
    }
}

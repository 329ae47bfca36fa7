//! PostgreSQL clients that cannot log in with OAuth (the `clients` part): Debian bookworm's psql 15, psycopg 3,
//! node-postgres and pgjdbc, each run as its own process that connects, runs one statement and prints the first
//! column of each row. The authenticating proxy's tests connect them through it.

use std::path::PathBuf;
use std::process::Command;

use crate::env::WorldEnv;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct Clients {
    dir: PathBuf,
    psql15: PathBuf,
}

impl Clients {
    pub fn locate() -> Result<Clients> {
        let world = WorldEnv::load()?;
        Ok(Clients {
            dir: world.require("PGRATOR_CLIENTS_DIR")?,
            psql15: world.require("PGRATOR_PSQL15")?,
        })
    }

    /// The psql 15 binary.
    pub fn psql15_path(&self) -> &std::path::Path {
        &self.psql15
    }

    /// psql 15 (libpq 15): `conninfo`, then `sql`, tuples only.
    pub fn psql15(&self, conninfo: &str, sql: &str) -> Command {
        let mut c = Command::new(&self.psql15);
        c.args(["-XtAq", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql]);
        c.env_remove("PGPASSWORD");
        c
    }

    /// psycopg 3 (its bundled libpq) with a libpq connection string.
    pub fn psycopg(&self, conninfo: &str, sql: &str) -> Command {
        let mut c = Command::new(self.dir.join("venv/bin/python"));
        c.arg(self.dir.join("query.py")).args([conninfo, sql]);
        c
    }

    /// node-postgres: `host` is an address or a socket directory; database `app`.
    pub fn node(&self, host: &str, port: u16, user: &str, password: &str, sql: &str) -> Command {
        let mut c = Command::new("node");
        c.arg(self.dir.join("query.mjs"))
            .args([host, &port.to_string(), user, password, sql])
            .current_dir(&self.dir);
        c
    }

    /// pgjdbc with a JDBC URL (Java's single-file source launcher; no build step).
    pub fn jdbc(&self, url: &str, sql: &str) -> Command {
        let mut c = Command::new("java");
        c.arg("-cp")
            .arg(self.dir.join("jdbc/postgresql.jar"))
            .arg(self.dir.join("Query.java"))
            .args([url, sql]);
        c
    }

    /// The directory the clients live in (its files are world-readable, for a client run as another user).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

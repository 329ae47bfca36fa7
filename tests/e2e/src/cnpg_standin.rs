//! CNPG's instance manager, for the part the personal-access proof depends on. CNPG cannot run pods here, so this
//! takes the Cluster and the DatabaseRoles the operator wrote and applies them to a local PostgreSQL 18 the way
//! CNPG applies them to an instance: pg_hba and pg_ident lines, the validator's settings, the managed roles and the
//! DatabaseRoles (CREATE/ALTER ROLE), then a reload. Applied when something changed, a few times a second.
//!
//! Differences from a pod, on purpose: the local server has no TLS, so `hostssl ... all` becomes `host ...
//! 127.0.0.1/32`; settings the running server does not know are skipped (and reported).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};
use pgrator_operator::desired::access::DATABASE_ROLE;
use pgrator_operator::desired::kinds;
use pgrator_world::postgres::Postgres;
use serde_json::Value;

/// What the stand-in applied last, for tests to wait on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    pub hba: Vec<String>,
    pub ident: Vec<String>,
    pub settings: Vec<(String, String)>,
    /// Roles and whether they may log in.
    pub roles: Vec<(String, bool)>,
    /// Roles and the roles they are members of.
    pub memberships: Vec<(String, Vec<String>)>,
    pub applies: u64,
    /// Settings the server did not know (skipped).
    pub skipped: BTreeSet<String>,
}

pub struct Standin {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub applied: Arc<Mutex<Applied>>,
}

impl Standin {
    /// Starts applying the Cluster `cluster` of `namespace` to `pg`. The database `app` owned by `app` is made
    /// first, as CNPG's initdb bootstrap does.
    pub fn start(
        kube_config: kube::Config,
        namespace: &str,
        cluster: &str,
        pg: Arc<Postgres>,
    ) -> Standin {
        pg.sql("postgres", "CREATE ROLE app LOGIN")
            .and_then(|_| pg.sql("postgres", "CREATE DATABASE app OWNER app"))
            .expect("bootstrap the app database");
        let stop = Arc::new(AtomicBool::new(false));
        let applied = Arc::new(Mutex::new(Applied::default()));
        let (ns, name) = (namespace.to_owned(), cluster.to_owned());
        let thread = {
            let (stop, applied) = (stop.clone(), applied.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let client = kube::Client::try_from(kube_config).expect("client");
                    let clusters: Api<DynamicObject> =
                        Api::namespaced_with(client.clone(), &ns, &kinds::CLUSTER.api_resource());
                    let roles: Api<DynamicObject> =
                        Api::namespaced_with(client, &ns, &DATABASE_ROLE.api_resource());
                    let mut last: Option<Applied> = None;
                    while !stop.load(Ordering::Relaxed) {
                        if let (Ok(Some(c)), Ok(r)) = (
                            clusters.get_opt(&name).await,
                            roles.list(&ListParams::default()).await,
                        ) {
                            let wanted = desired(&c.data, &r.items, &name);
                            if last.as_ref().map(strip) != Some(strip(&wanted)) {
                                let done = apply(&pg, wanted.clone());
                                let mut a = applied.lock().expect("lock");
                                *a = Applied {
                                    applies: a.applies + 1,
                                    ..done
                                };
                                last = Some(wanted);
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                });
            })
        };
        Standin {
            stop,
            thread: Some(thread),
            applied,
        }
    }

    pub fn applied(&self) -> Applied {
        self.applied.lock().expect("lock").clone()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn strip(a: &Applied) -> Applied {
    Applied {
        applies: 0,
        skipped: BTreeSet::new(),
        ..a.clone()
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// What CNPG would make of the Cluster and the DatabaseRoles of `cluster`.
fn desired(cluster: &Value, roles: &[DynamicObject], name: &str) -> Applied {
    let hba = strings(cluster.pointer("/spec/postgresql/pg_hba"))
        .into_iter()
        .map(|l| {
            let l = l.replacen("hostssl ", "host ", 1);
            // `host <db> <users> all <method> ...` -> loopback only.
            let mut parts: Vec<&str> = l.splitn(5, ' ').collect();
            if parts.len() == 5 && parts[3] == "all" {
                parts[3] = "127.0.0.1/32";
            }
            parts.join(" ")
        })
        .collect();
    let ident = strings(cluster.pointer("/spec/postgresql/pg_ident"));
    let settings = cluster
        .pointer("/spec/postgresql/parameters")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .filter(|(k, _)| k.starts_with("pgrator_validator."))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut role_list: Vec<(String, bool)> = Vec::new();
    let mut grants: Vec<(String, Vec<String>)> = Vec::new();
    for managed in cluster
        .pointer("/spec/managed/roles")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let role = managed["name"].as_str().unwrap_or_default().to_owned();
        role_list.push((role.clone(), managed["login"].as_bool().unwrap_or(false)));
        grants.push((role, strings(managed.get("inRoles"))));
    }
    for r in roles {
        if r.data.pointer("/spec/cluster/name").and_then(Value::as_str) != Some(name) {
            continue;
        }
        let role = r
            .data
            .pointer("/spec/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let login = r
            .data
            .pointer("/spec/login")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        role_list.push((role.clone(), login));
        grants.push((role, strings(r.data.pointer("/spec/inRoles"))));
    }
    Applied {
        hba,
        ident,
        settings,
        roles: role_list,
        memberships: grants,
        ..Applied::default()
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Applies to the server what `wanted` says, as CNPG would; returns it with the skipped settings.
fn apply(pg: &Postgres, mut wanted: Applied) -> Applied {
    pg.write_hba(&wanted.hba).expect("write pg_hba.conf");
    pg.write_ident(&wanted.ident).expect("write pg_ident.conf");
    let known = pg
        .sql(
            "postgres",
            "SELECT string_agg(name, ',') FROM pg_settings WHERE name LIKE 'pgrator_validator.%'",
        )
        .unwrap_or_default();
    let known: BTreeSet<&str> = known.trim().split(',').collect();
    for (key, value) in &wanted.settings {
        if known.contains(key.as_str()) {
            pg.sql(
                "postgres",
                &format!(
                    "ALTER SYSTEM SET {} = {}",
                    quote_ident(key),
                    quote_literal(value)
                ),
            )
            .unwrap_or_else(|e| panic!("ALTER SYSTEM SET {key}: {e}"));
        } else {
            wanted.skipped.insert(key.clone());
        }
    }
    for (role, login) in &wanted.roles {
        let login = if *login { "LOGIN" } else { "NOLOGIN" };
        pg.sql(
            "postgres",
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {lit}) THEN CREATE ROLE {id} {login}; \
                 ELSE ALTER ROLE {id} {login}; END IF; END $$;",
                lit = quote_literal(role),
                id = quote_ident(role),
            ),
        )
        .unwrap_or_else(|e| panic!("role {role}: {e}"));
    }
    for (role, member_of) in &wanted.memberships {
        // As CNPG reconciles `inRoles`: memberships no longer listed are revoked.
        let listed = member_of
            .iter()
            .map(|g| quote_literal(g))
            .collect::<Vec<_>>()
            .join(",");
        pg.sql(
            "postgres",
            &format!(
                "DO $$ DECLARE g name; BEGIN FOR g IN SELECT r.rolname FROM pg_auth_members m \
                 JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member \
                 WHERE u.rolname = {lit} AND NOT (r.rolname::text = ANY(ARRAY[{listed}]::text[])) \
                 LOOP EXECUTE format('REVOKE %I FROM %I', g, {lit}); END LOOP; END $$;",
                lit = quote_literal(role),
            ),
        )
        .unwrap_or_else(|e| panic!("memberships of {role}: {e}"));
        for group in member_of {
            pg.sql(
                "postgres",
                &format!("GRANT {} TO {}", quote_ident(group), quote_ident(role)),
            )
            .unwrap_or_else(|e| panic!("GRANT {group} TO {role}: {e}"));
        }
    }
    pg.reload().expect("reload");
    wanted
}

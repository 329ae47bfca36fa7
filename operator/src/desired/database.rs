//! The application database as a CNPG `Database`: owner `app`, and the extensions the team asked for, kept present
//! (CNPG runs CREATE EXTENSION). Kept when the Postgres goes without allowDeletion, and never dropped by CNPG
//! (reclaim policy retain).

use serde_json::json;

use super::{Child, Context, DesiredError, kinds};

/// The Database; an extension that is not in the platform's catalog (the allowlist) is refused, naming what is.
pub fn database(cx: &Context<'_>) -> Result<Child, DesiredError> {
    let asked = cx
        .postgres
        .spec
        .database
        .as_ref()
        .map(|d| d.extensions.as_slice())
        .unwrap_or_default();
    let catalog = &cx.config.extensions;
    if let Some(unknown) = asked
        .iter()
        .find(|e| !catalog.catalog.contains_key(&e.name))
    {
        return Err(DesiredError::ExtensionNotOffered {
            name: unknown.name.clone(),
            available: catalog.available(),
        });
    }
    let extensions: Vec<_> = asked
        .iter()
        .map(|e| json!({"name": e.name, "ensure": "present"}))
        .collect();
    Ok(cx.object(
        kinds::DATABASE,
        cx.names.database(),
        json!({"spec": {
            "cluster": {"name": cx.names.cluster()},
            "name": "app",
            "owner": "app",
            "ensure": "present",
            "databaseReclaimPolicy": "retain",
            "extensions": extensions,
        }}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::{SMALL, postgres};

    #[test]
    fn the_teams_extensions_are_kept_present() {
        let config = crate::config::tests::example();
        let pg = postgres(&SMALL.replace(
            "spec:\n",
            "spec:\n  database: {extensions: [{name: pgcrypto}, {name: pg_trgm}]}\n",
        ));
        let cx = Context::new(&pg, &config).expect("context");
        let db = database(&cx).expect("offered extensions");
        assert_eq!(db.name(), "orders-app");
        assert_eq!(
            db.object.data["spec"]["extensions"],
            json!([{"name": "pgcrypto", "ensure": "present"}, {"name": "pg_trgm", "ensure": "present"}])
        );
    }

    #[test]
    fn an_extension_outside_the_catalog_is_refused_naming_what_is_offered() {
        let config = crate::config::tests::example();
        for unknown in ["postgres_fdw", "dblink", "plpython3u", "vector"] {
            let pg = postgres(&SMALL.replace(
                "spec:\n",
                &format!(
                    "spec:\n  database: {{extensions: [{{name: pg_trgm}}, {{name: {unknown}}}]}}\n"
                ),
            ));
            let cx = Context::new(&pg, &config).expect("context");
            let refused = database(&cx).expect_err(unknown).to_string();
            assert!(
                refused.contains(&format!("extension {unknown} is not offered")),
                "{refused}"
            );
            assert!(refused.contains("pg_trgm, pgcrypto"), "{refused}");
        }
    }
}

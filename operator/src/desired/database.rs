//! The application database as a CNPG `Database`: owner `app`, and the extensions the team asked for, kept present
//! (CNPG runs CREATE EXTENSION). Kept when the Postgres goes without allowDeletion, and never dropped by CNPG
//! (reclaim policy retain).

use serde_json::json;

use super::{Child, Context, kinds};

pub fn database(cx: &Context<'_>) -> Child {
    let extensions: Vec<_> = cx
        .postgres
        .spec
        .database
        .as_ref()
        .map(|d| d.extensions.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|e| json!({"name": e.name, "ensure": "present"}))
        .collect();
    cx.object(
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
    )
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
            "spec:\n  database: {extensions: [{name: vector}, {name: pg_trgm}]}\n",
        ));
        let cx = Context::new(&pg, &config).expect("context");
        let db = database(&cx);
        assert_eq!(db.name(), "orders-app");
        assert_eq!(
            db.object.data["spec"]["extensions"],
            json!([{"name": "vector", "ensure": "present"}, {"name": "pg_trgm", "ensure": "present"}])
        );
    }
}

//! The connection pooler: PgBouncer in front of the primary, transaction mode, two instances.

use serde_json::json;

use super::{Child, Context, kinds};

pub fn pooler(cx: &Context<'_>) -> Child {
    cx.object(
        kinds::POOLER,
        cx.names.pooler(),
        json!({"spec": {
            "cluster": {"name": cx.names.cluster()},
            "instances": 2,
            "type": "rw",
            "pgbouncer": {
                "poolMode": "transaction",
                "parameters": {
                    "max_client_conn": "1000",
                    "default_pool_size": "20",
                },
            },
        }}),
    )
}

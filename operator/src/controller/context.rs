//! What every reconcile shares: the client, the configuration, the watch cache, metrics and the event recorder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

use super::cache::ChildCache;
use super::metrics::{SharedMetrics, StateLabels};
use crate::api::{Postgres, PostgresAccess};
use crate::config::OperatorConfig;
use crate::desired::access::{OpenGrant, open_grants};

pub struct Context {
    pub client: kube::Client,
    pub config: Arc<OperatorConfig>,
    pub cache: ChildCache,
    pub metrics: SharedMetrics,
    pub recorder: Recorder,
    /// The clock (a function so tests of time-dependent behaviour can move it).
    pub now: fn() -> Timestamp,
    /// Every PostgresAccess (the access controller's store), for the grants of each Postgres.
    pub accesses: Store<PostgresAccess>,
    /// Every Postgres (the Postgres controller's store), for the access controller.
    pub postgres: Store<Postgres>,
    states: Mutex<HashMap<ObjectRef<Postgres>, &'static str>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        config: Arc<OperatorConfig>,
        cache: ChildCache,
        metrics: SharedMetrics,
        instance: Option<String>,
        stores: (Store<PostgresAccess>, Store<Postgres>),
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "pgrator".into(),
                instance,
            },
        );
        Context {
            client,
            config,
            cache,
            metrics,
            recorder,
            now: Timestamp::now,
            accesses: stores.0,
            postgres: stores.1,
            states: Mutex::default(),
        }
    }

    /// The open personal access grants of the Postgres `postgres` in `namespace`, now.
    pub fn open_grants(&self, namespace: &str, postgres: &str) -> Vec<OpenGrant> {
        let all = self.accesses.state();
        let here: Vec<&PostgresAccess> = all
            .iter()
            .map(AsRef::as_ref)
            .filter(|a| a.metadata.namespace.as_deref() == Some(namespace))
            .collect();
        open_grants(
            &here,
            postgres,
            self.config.access.max_ttl_seconds,
            (self.now)(),
        )
    }

    /// Records the state of one Postgres (None when it is gone) and refreshes the per-state gauge.
    pub fn set_state(&self, postgres: ObjectRef<Postgres>, state: Option<&'static str>) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            Some(s) => states.insert(postgres, s),
            None => states.remove(&postgres),
        };
        for state in ["Ready", "Progressing", "Degraded"] {
            let n = states.values().filter(|s| **s == state).count();
            self.metrics
                .postgres_by_state
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.metrics
            .cached_objects
            .set(i64::try_from(self.cache.len()).unwrap_or(i64::MAX));
    }
}

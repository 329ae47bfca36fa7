//! A watch-fed cache of every object the operator made, so that a reconcile reads nothing from the API server and
//! a no-op resync makes no request at all. Objects are kept as compact JSON text without `managedFields` (a tenth of
//! the memory of parsed objects); a reconcile parses the few it needs.
//!
//! Each change also names the Postgres it belongs to (its `data.nais.io/postgres` label), which is how drift made by
//! someone else triggers a reconcile, for owned and for data-bearing (not owned) objects alike.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use futures::channel::mpsc::UnboundedSender;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::watch;

use crate::api::Postgres;
use crate::desired::{Kind, access, kinds};

/// Every kind the cache follows: the Postgres's dependents and the personal roles of its grants.
fn watched() -> Vec<Kind> {
    let mut all = kinds::ALL.to_vec();
    all.push(access::DATABASE_ROLE);
    all
}
use crate::names::{MANAGED_BY, MANAGER, POSTGRES_LABEL};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: &'static str,
    namespace: String,
    name: String,
}

struct Entry {
    postgres: String,
    resource_version: Option<u64>,
    json: Box<str>,
}

/// The cache; cheap to clone.
#[derive(Clone)]
pub struct ChildCache {
    objects: Arc<RwLock<HashMap<Key, Entry>>>,
    synced: watch::Sender<usize>,
}

impl Default for ChildCache {
    fn default() -> Self {
        ChildCache {
            objects: Arc::default(),
            synced: watch::channel(0).0,
        }
    }
}

impl ChildCache {
    /// The live object of `kind` named `name`, as JSON.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        let key = Key {
            kind: kind.kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        objects
            .get(&key)
            .and_then(|e| serde_json::from_str(&e.json).ok())
    }

    /// Every cached object made for the Postgres `postgres` in `namespace`: (kind, name).
    pub fn children_of(&self, namespace: &str, postgres: &str) -> Vec<(Kind, String)> {
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        let mut found: Vec<(Kind, String)> = objects
            .iter()
            .filter(|(k, e)| k.namespace == namespace && e.postgres == postgres)
            .filter_map(|(k, _)| {
                watched()
                    .into_iter()
                    .find(|kind| kind.kind == k.kind)
                    .map(|kind| (kind, k.name.clone()))
            })
            .collect();
        found.sort_by_key(|(kind, name)| (kind.kind, name.clone()));
        found
    }

    /// Number of cached objects (a metric).
    pub fn len(&self) -> usize {
        self.objects.read().map(|o| o.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records an object we just wrote (the server's answer), unless the cache already has a newer version.
    pub fn store(&self, kind: Kind, object: &DynamicObject) {
        let Some(key) = key_of(kind, object) else {
            return;
        };
        let entry = entry_of(object);
        let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
        let newer = match (
            objects.get(&key).and_then(|e| e.resource_version),
            entry.resource_version,
        ) {
            (Some(have), Some(new)) => new >= have,
            _ => true,
        };
        if newer {
            objects.insert(key, entry);
        }
    }

    pub fn forget(&self, kind: Kind, namespace: &str, name: &str) {
        let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
        objects.remove(&Key {
            kind: kind.kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    }

    /// Waits until every kind's first list is in the cache (the controller starts only then, or it would take
    /// every existing object for missing).
    pub async fn synced(&self) {
        let mut rx = self.synced.subscribe();
        let wanted = watched().len();
        let _ = rx.wait_for(|n| *n >= wanted).await;
    }

    /// Watches every kind, keeps the cache, and sends the owning Postgres of each change to `triggers`.
    /// Runs until the process ends; watch errors are retried with backoff and logged.
    /// `namespace`: watch only there (None: every namespace).
    pub async fn run(
        self,
        client: kube::Client,
        namespace: Option<String>,
        triggers: UnboundedSender<ObjectRef<Postgres>>,
    ) {
        let watches = watched().into_iter().map(|kind| {
            let this = self.clone();
            let triggers = triggers.clone();
            let api: Api<DynamicObject> = match &namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &kind.api_resource()),
                None => Api::all_with(client.clone(), &kind.api_resource()),
            };
            async move { this.watch_kind(api, kind, triggers).await }
        });
        futures::future::join_all(watches).await;
    }

    async fn watch_kind(
        &self,
        api: Api<DynamicObject>,
        kind: Kind,
        triggers: UnboundedSender<ObjectRef<Postgres>>,
    ) {
        let config = watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER}"));
        let mut counted = false;
        let mut relist: HashSet<Key> = HashSet::new();
        let mut events = watcher(api, config).default_backoff().boxed();
        loop {
            let event = match events.try_next().await {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(kind = kind.kind, %error, "watch failed; retrying");
                    continue;
                }
            };
            match event {
                watcher::Event::Init => relist.clear(),
                watcher::Event::InitApply(object) => {
                    if let Some(key) = key_of(kind, &object) {
                        relist.insert(key);
                    }
                    self.apply_event(kind, &object, &triggers);
                }
                watcher::Event::InitDone => {
                    // Objects deleted while we were not watching.
                    let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
                    objects.retain(|k, _| k.kind != kind.kind || relist.contains(k));
                    drop(objects);
                    if !counted {
                        counted = true;
                        self.synced.send_modify(|n| *n += 1);
                    }
                }
                watcher::Event::Apply(object) => self.apply_event(kind, &object, &triggers),
                watcher::Event::Delete(object) => {
                    if let Some(key) = key_of(kind, &object) {
                        self.objects
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&key);
                    }
                    trigger(&object, &triggers);
                }
            }
        }
    }

    fn apply_event(
        &self,
        kind: Kind,
        object: &DynamicObject,
        triggers: &UnboundedSender<ObjectRef<Postgres>>,
    ) {
        if let Some(key) = key_of(kind, object) {
            let entry = entry_of(object);
            self.objects
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, entry);
        }
        trigger(object, triggers);
    }
}

fn key_of(kind: Kind, object: &DynamicObject) -> Option<Key> {
    Some(Key {
        kind: kind.kind,
        namespace: object.metadata.namespace.clone()?,
        name: object.metadata.name.clone()?,
    })
}

fn postgres_of(object: &DynamicObject) -> String {
    object
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POSTGRES_LABEL))
        .cloned()
        .unwrap_or_default()
}

fn entry_of(object: &DynamicObject) -> Entry {
    let mut object = object.clone();
    object.metadata.managed_fields = None;
    if let Some(a) = object.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    Entry {
        postgres: postgres_of(&object),
        resource_version: object
            .metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse().ok()),
        json: serde_json::to_string(&object)
            .unwrap_or_default()
            .into_boxed_str(),
    }
}

fn trigger(object: &DynamicObject, triggers: &UnboundedSender<ObjectRef<Postgres>>) {
    let postgres = postgres_of(object);
    if let (false, Some(ns)) = (postgres.is_empty(), object.metadata.namespace.as_deref()) {
        let _ = triggers.unbounded_send(ObjectRef::new(&postgres).within(ns));
    }
}

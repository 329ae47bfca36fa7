//! The thin loop around the pure parts: watch Postgres objects and everything made for them, reconcile each
//! (read from the cache, compute, apply what differs, write status), hold a leader lease, serve metrics.

pub mod access;
pub mod apply;
pub mod cache;
pub mod client;
pub mod context;
pub mod diff;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod postgres;
pub mod server;
pub mod status;

use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{Controller, watcher};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::{Postgres, PostgresAccess};
use crate::config::OperatorConfig;
use cache::ChildCache;
use context::Context;
use metrics::SharedMetrics;

/// How the operator runs.
pub struct RunOptions {
    /// Leader election; `None` runs without it (a single replica, or a test).
    pub lease: Option<leader::LeaseConfig>,
    /// This replica's name in events.
    pub instance: Option<String>,
    /// Postgres objects reconciled at the same time.
    pub concurrency: u16,
    /// Watch one namespace only (None: all of them).
    pub namespace: Option<String>,
}

/// Runs the operator until `shutdown` resolves (then finishes the reconciles in flight and gives up the lease) or
/// leadership is lost (an error: the process should exit and be restarted as a standby).
pub async fn run(
    client: kube::Client,
    config: Arc<OperatorConfig>,
    metrics: SharedMetrics,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), leader::LeaderError> {
    let leader = options
        .lease
        .map(|lease| leader::Leader::new(client.clone(), lease));
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    if let Some(leader) = &leader {
        tokio::select! {
            () = leader.acquire() => {}
            () = shutdown.clone() => return Ok(()),
        }
    }
    metrics.leader.set(1);

    let cache = ChildCache::default();
    let (triggers, trigger_stream) = futures::channel::mpsc::unbounded();
    let watching = tokio::spawn(cache.clone().run(
        client.clone(),
        options.namespace.clone(),
        triggers,
    ));
    cache.synced().await;
    tracing::info!(objects = cache.len(), "cache of dependents synced");

    let (postgres, accesses): (Api<Postgres>, Api<PostgresAccess>) = match &options.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let controller_config =
        kube::runtime::controller::Config::default().concurrency(options.concurrency);
    let access_controller = Controller::new(accesses.clone(), watcher::Config::default())
        .with_config(controller_config.clone());
    // A grant changes the pg_ident lines and the validator's list of its Postgres.
    let postgres_controller = Controller::new(postgres, watcher::Config::default())
        .with_config(controller_config)
        .watches(
            accesses,
            watcher::Config::default(),
            |grant: PostgresAccess| {
                grant
                    .namespace()
                    .map(|ns| ObjectRef::new(&grant.spec.postgres).within(&ns))
            },
        )
        .reconcile_on(trigger_stream);
    let cx = Arc::new(Context::new(
        client,
        config,
        cache,
        metrics.clone(),
        options.instance,
        (access_controller.store(), postgres_controller.store()),
    ));
    let postgres_loop = postgres_controller
        .graceful_shutdown_on(shutdown.clone())
        .run(postgres::reconcile, postgres::error_policy, cx.clone())
        .for_each(|_| async {});
    let access_loop = access_controller
        .graceful_shutdown_on(shutdown.clone())
        .run(access::reconcile, access::error_policy, cx)
        .for_each(|_| async {});
    let controller = async {
        futures::future::join(postgres_loop, access_loop).await;
    };

    let outcome = match &leader {
        Some(leader) => tokio::select! {
            () = controller => Ok(()),
            lost = leader.keep() => Err(lost),
        },
        None => {
            controller.await;
            Ok(())
        }
    };
    watching.abort();
    metrics.leader.set(0);
    if let (Some(leader), Ok(())) = (&leader, &outcome) {
        leader.release().await;
    }
    outcome
}

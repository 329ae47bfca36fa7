//! Leader election with a coordination.k8s.io Lease: only the holder reconciles. The holder renews every
//! `renew_every`; it stops acting if it could not renew for `renew_deadline`, which is shorter than the lease, so
//! another replica (which waits for the whole lease to run out) never acts at the same time.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub renew_every: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.to_owned(),
            name: "pgrator-operator".to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lost the leader lease {0} (could not renew it in time)")]
    Lost(String),
}

pub struct Leader {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl Leader {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Leader {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_hold().await {
                Ok(true) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "leader lease acquired");
                    return;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "leader election: lease not readable"),
            }
            tokio::time::sleep(self.config.renew_every).await;
        }
    }

    /// Renews the lease until it cannot; returns when leadership is lost (never while it is held).
    pub async fn keep(&self) -> LeaderError {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            match self.try_hold().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => return LeaderError::Lost(self.config.name.clone()),
                Err(error) => tracing::warn!(%error, "leader election: renewal failed"),
            }
            if renewed.elapsed() > self.config.renew_deadline {
                return LeaderError::Lost(self.config.name.clone());
            }
        }
    }

    /// Gives the lease up at shutdown so a standby takes over at once.
    pub async fn release(&self) {
        if let Ok(mut lease) = self.api.get(&self.config.name).await
            && self.holder(&lease).as_deref() == Some(self.config.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            let _ = self
                .api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await;
        }
    }

    fn holder(&self, lease: &Lease) -> Option<String> {
        lease.spec.as_ref().and_then(|s| s.holder_identity.clone())
    }

    /// Takes or renews the lease; Ok(false) when someone else holds it or won a race for it.
    async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(15);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let mine = spec.holder_identity.as_deref() == Some(self.config.identity.as_str());
        if !mine {
            let held_until = spec.renew_time.as_ref().map(|t| {
                t.0 + jiff::SignedDuration::from_secs(i64::from(
                    spec.lease_duration_seconds.unwrap_or(seconds),
                ))
            });
            let vacant = spec.holder_identity.is_none();
            if !vacant && held_until.is_some_and(|until| until > now) {
                return Ok(false);
            }
            spec.holder_identity = Some(self.config.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(MicroTime(now));
        // The resourceVersion in `lease` makes this a compare-and-swap: a racing replica gets 409.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

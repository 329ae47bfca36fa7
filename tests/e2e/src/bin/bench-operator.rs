//! `just bench-operator`: N Postgres objects (default 1000, PGRATOR_BENCH_POSTGRES) reconciled by the release
//! operator binary, run as its own process against the test world's real kube-apiserver with the real CRDs.
//! Prints: time from operator start to every Postgres converged (all 13 objects each applied, status written),
//! the operator's peak and settled memory (VmHWM/VmRSS), its API requests by verb, and the requests per no-op
//! reconcile afterwards. Asserts nothing. CNPG does not run here, so "converged" is the operator's part: every
//! object applied and the status saying it waits for CNPG.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::api::{Api, ListParams, PostParams};
use pgrator_e2e::operator::install_crds;
use pgrator_operator::api::Postgres;
use pgrator_world::kube::ControlPlane;
use pgrator_world::ports::free_port;
use serde_json::json;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The operator's counters from /metrics: requests by verb and reconciles.
fn scrape(port: u16) -> Result<(Vec<(String, u64)>, u64)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    use std::io::Write as _;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    let mut requests = Vec::new();
    let mut reconciles = 0;
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("pgrator_api_requests_total{verb=\"") {
            let (verb, value) = rest.split_once("\"} ").unwrap_or_default();
            requests.push((verb.to_owned(), value.trim().parse().unwrap_or(0)));
        } else if let Some(v) = line.strip_prefix("pgrator_reconciles_total ") {
            reconciles = v.trim().parse().unwrap_or(0);
        }
    }
    requests.sort();
    Ok((requests, reconciles))
}

fn total(requests: &[(String, u64)]) -> u64 {
    requests.iter().map(|(_, n)| n).sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let operator_bin = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: bench-operator <path to the pgrator-operator binary>")?,
    );
    let n: usize = std::env::var("PGRATOR_BENCH_POSTGRES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);

    let plane = ControlPlane::start().context("starting the Kubernetes control plane")?;
    let client = plane.client().await?;
    install_crds(&client).await;
    let ns = plane.namespace("bench").await?;
    let api: Api<Postgres> = Api::namespaced(client.clone(), &ns);

    let created = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let pg: Postgres = serde_json::from_value(json!({
                    "apiVersion": "data.nais.io/v1", "kind": "Postgres",
                    "metadata": {"name": format!("db-{i:05}")},
                    "spec": {"cluster": {"majorVersion": "18", "highAvailability": i % 3 == 0,
                        "resources": {"cpu": "500m", "memory": "2Gi", "diskSize": "10Gi"}}},
                }))?;
                api.create(&PostParams::default(), &pg).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    println!(
        "created {n} Postgres objects in {:.1} s (the operator not yet running)",
        created.elapsed().as_secs_f64()
    );

    let work = tempfile::tempdir()?;
    let config = work.path().join("config.yaml");
    std::fs::write(
        &config,
        include_str!("../../../../operator/deploy/config.example.yaml"),
    )?;
    let metrics_port = free_port();
    let started = Instant::now();
    let log = std::fs::File::create(work.path().join("operator.log"))?;
    let operator = Running(
        Command::new(&operator_bin)
            .args(["run", "--config"])
            .arg(&config)
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(["--watch-namespace", &ns])
            .env("KUBECONFIG", plane.kubeconfig())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", operator_bin.display()))?,
    );
    let pid = operator.0.id();

    // Converged: every Postgres has a status for its generation that no longer says "Applied".
    let mut peak_seen = 0;
    loop {
        let list = api.list(&ListParams::default()).await?;
        let done = list
            .items
            .iter()
            .filter(|p| {
                p.status.as_ref().is_some_and(|s| {
                    s.observed_generation == p.metadata.generation
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Progressing" && c.reason == "WaitingForCluster")
                })
            })
            .count();
        peak_seen = peak_seen.max(proc_status_kib(pid, "VmHWM:"));
        if done == n {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!(
                "only {done} of {n} converged after 15 minutes; log in {}",
                work.path().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converge = started.elapsed();
    let (requests, reconciles) = scrape(metrics_port)?;

    // Steady state: the periodic resyncs of converged objects.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (before, reconciles_before) = scrape(metrics_port)?;
    tokio::time::sleep(Duration::from_secs(40)).await;
    let (after, reconciles_after) = scrape(metrics_port)?;
    let resyncs = reconciles_after.saturating_sub(reconciles_before);
    let resync_requests = total(&after).saturating_sub(total(&before));

    let objects = n * 13;
    println!();
    println!(
        "operator: {} (release), {n} Postgres, {objects} objects",
        operator_bin.display()
    );
    println!(
        "converged in {:.1} s ({:.0} objects/s), {reconciles} reconciles",
        converge.as_secs_f64(),
        objects as f64 / converge.as_secs_f64()
    );
    println!(
        "memory: peak {:.1} MiB (VmHWM), settled {:.1} MiB (VmRSS)",
        peak_seen.max(proc_status_kib(pid, "VmHWM:")) as f64 / 1024.0,
        proc_status_kib(pid, "VmRSS:") as f64 / 1024.0
    );
    println!(
        "API requests to converge: {} ({})",
        total(&requests),
        requests
            .iter()
            .map(|(v, n)| format!("{v} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "steady state over 40 s: {resyncs} no-op reconciles, {resync_requests} API requests ({:.3} per reconcile)",
        if resyncs == 0 {
            0.0
        } else {
            resync_requests as f64 / resyncs as f64
        }
    );
    drop(operator);
    Ok(())
}

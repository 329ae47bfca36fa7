//! `pgrator postgres port-forward` against the real kube-apiserver: it finds the primary CNPG reports, listens locally,
//! prints how to connect, and forwards each connection through the `pods/portforward` subresource. The test world
//! has no kubelet, so the forward itself is refused by the API server (no such pod); what is proven here is
//! everything up to that call (the request for the right pod reaches the API server, one per connection, a failed
//! forward closes its client and not the proxy), and the clear errors before it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use pgrator_e2e::operator::{
    Operator, cli_binary, create_postgres, get, plane, report_cluster_status, setup, wait_for,
};
use pgrator_operator::desired::kinds;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_finds_the_primary_and_forwards_through_the_api() {
    let (client, ns) = setup("proxy").await;
    let operator = Operator::start(&ns, None).await;
    create_postgres(&client, &ns, "orders", json!({})).await;
    wait_for("the Cluster", Duration::from_secs(60), || async {
        get(&client, &ns, kinds::CLUSTER, "orders").await
    })
    .await;
    let kubeconfig = plane().kubeconfig().to_path_buf();
    let proxy = |ns: String| {
        Command::new(cli_binary())
            .args([
                "postgres",
                "port-forward",
                "orders",
                "-n",
                &ns,
                "--port",
                "0",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pgrator")
    };

    // No primary yet: a clear error, exit code 6 (Kubernetes).
    let out = proxy(ns.clone()).wait_with_output().expect("pgrator ran");
    assert_eq!(out.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no primary yet"), "{stderr}");
    let missing = Command::new(cli_binary())
        .args(["postgres", "port-forward", "nowhere", "-n", &ns])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("pgrator ran");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("there is no database nowhere"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // CNPG reports a primary: the proxy listens, prints the connection string, and forwards a connection to the
    // pod through the API server (which, with no kubelet here, says the pod does not exist).
    report_cluster_status(
        &client,
        &ns,
        "orders",
        json!({"currentPrimary": "orders-1"}),
    )
    .await;
    let mut child = proxy(ns.clone());
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("text");
    let port: u16 = first
        .strip_prefix("Forwarding 127.0.0.1:")
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"));
    let second = lines.next().expect("a line").expect("text");
    assert!(
        second.contains(&format!("host=127.0.0.1 port={port} dbname=app")),
        "{second}"
    );
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    // The forward fails, so the proxy closes this client's connection without a byte from anywhere.
    let read = conn
        .read(&mut buf)
        .expect("the proxy closes the connection");
    assert_eq!(
        read,
        0,
        "bytes from a forward that failed: {:?}",
        &buf[..read]
    );
    // One failed forward does not end the proxy: it still runs and takes the next connection.
    assert!(child.try_wait().expect("wait").is_none(), "the proxy ended");
    let mut again = std::net::TcpStream::connect(("127.0.0.1", port)).expect("a second connection");
    again
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    assert_eq!(again.read(&mut buf).expect("closed again"), 0);
    let _ = child.kill();
    let out = child.wait_with_output().expect("pgrator ended");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The API server's own answer for the primary CNPG named, in this namespace: the request went out for it.
    let forward = format!("port-forward to {ns}/orders-1:");
    assert_eq!(
        stderr.matches(&forward).count(),
        2,
        "one forward per connection: {stderr}"
    );
    assert!(
        stderr.contains(r#"pods \"orders-1\" not found"#) && stderr.contains("code: 404"),
        "{stderr}"
    );
    operator.stop().await;
}

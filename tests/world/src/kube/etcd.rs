//! etcd for the API server: one member on loopback, plain HTTP (nothing leaves the machine), no fsync.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::ports::free_port;
use crate::process::{Service, ServiceSpec};

pub(super) struct Etcd {
    pub service: Service,
    /// `http://127.0.0.1:<port>`, for `--etcd-servers`.
    pub url: String,
}

pub(super) fn start(program: &Path, data_dir: &Path, timeout: Duration) -> Result<Etcd> {
    let client_port = free_port();
    let peer_port = free_port();
    let url = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let spec = ServiceSpec::new("etcd", program).args([
        "--name=test".to_string(),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={url}"),
        format!("--advertise-client-urls={url}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=test={peer}"),
        // Test data is thrown away: durability costs fsyncs the shared disk does not need to pay.
        "--unsafe-no-fsync".to_string(),
        "--log-level=warn".to_string(),
    ]);
    let mut service = Service::start(spec)?;
    service.wait_ready(timeout, || healthy(client_port))?;
    Ok(Etcd { service, url })
}

/// etcd's `/health` answers `{"health":"true",...}` once the member has a leader and serves reads.
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains("\"health\":\"true\"")
}

//! Object storage outside the cluster, for backups: fake-gcs-server (a Google Cloud Storage emulator, the `gcs`
//! part) on the host's end of the world's link, where database pods reach it. It speaks plain HTTP on a link only
//! the world's namespace shares; the backup sidecar finds it through the client libraries' emulator setting
//! (`STORAGE_EMULATOR_HOST`), which also makes them use no credentials. Objects live in memory, with the world.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::ports::free_port;
use crate::process::{Service, ServiceSpec};

/// Starts the emulator on `host`; returns it and its endpoint (`http://<host>:<port>`).
pub(super) fn start(bin: &Path, host: Ipv4Addr, timeout: Duration) -> Result<(Service, String)> {
    let port = free_port();
    let endpoint = format!("http://{host}:{port}");
    let mut service = Service::start(
        ServiceSpec::new("fake-gcs", bin)
            .args([
                "-backend",
                "memory",
                "-scheme",
                "http",
                "-log-level",
                "warn",
            ])
            .arg("-host")
            .arg(host.to_string())
            .arg("-port")
            .arg(port.to_string())
            // The address written into upload URLs (resumable uploads continue there).
            .arg("-public-host")
            .arg(format!("{host}:{port}"))
            .arg("-external-url")
            .arg(&endpoint),
    )?;
    let address = SocketAddr::from((host, port));
    service.wait_ready(timeout, || {
        TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
    })?;
    Ok((service, endpoint))
}

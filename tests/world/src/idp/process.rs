//! The running IdP: started on a free port (loopback unless told otherwise) with a fresh CA, waited for, restarted, stopped.

use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use crate::env::WorldEnv;
use crate::error::{Result, WorldError};
use crate::ports::free_port;
use crate::process::{Service, ServiceSpec};
use crate::psql::DevicePrompt;
use crate::tls::TestCa;

use super::*;

/// A running IdP. Dropping it stops the process (logs are kept when a test panics).
pub struct Idp {
    service: Service,
    api: IdpApi,
    config: IdpConfig,
    ca: TestCa,
    spec: ServiceSpec,
    _dir: tempfile::TempDir,
}

impl Deref for Idp {
    type Target = IdpApi;
    fn deref(&self) -> &IdpApi {
        &self.api
    }
}

impl Idp {
    /// Starts the IdP with `config`, a fresh test CA and a state directory (so [`Idp::restart`] keeps keys and
    /// tokens), and waits until it serves.
    pub fn start(config: IdpConfig) -> Result<Idp> {
        Idp::start_at(config, std::net::Ipv4Addr::LOCALHOST)
    }

    /// As [`Idp::start`], listening on `address` (a local address, such as the host's end of a test world's link,
    /// for clients inside it); its certificate names that address.
    pub fn start_at(config: IdpConfig, address: std::net::Ipv4Addr) -> Result<Idp> {
        let bin = WorldEnv::load()?.require("PGRATOR_IDP_BIN")?;
        let ca = TestCa::new()?;
        let extra = (!address.is_loopback()).then(|| address.to_string());
        let cert = ca.server_cert("idp", &extra.iter().map(String::as_str).collect::<Vec<_>>())?;
        let dir = tempfile::Builder::new()
            .prefix("pgrator-idp-")
            .tempdir()
            .map_err(|e| WorldError::io("creating the IdP directory", e))?;
        let config_path = dir.path().join("idp-config.json");
        let text = serde_json::to_vec_pretty(&config)
            .map_err(|e| idp_err(format!("serializing the config: {e}")))?;
        std::fs::write(&config_path, text)
            .map_err(|e| WorldError::io(format!("writing {}", config_path.display()), e))?;
        let port = free_port();
        let issuer = format!("https://{address}:{port}");
        let spec = ServiceSpec::new("idp", bin)
            .arg("--addr")
            .arg(format!("{address}:{port}"))
            .arg("--issuer")
            .arg(&issuer)
            .arg("--tls-cert")
            .arg(&cert.cert)
            .arg("--tls-key")
            .arg(&cert.key)
            .arg("--config")
            .arg(&config_path)
            .arg("--state-dir")
            .arg(dir.path().join("state"));
        let api = IdpApi::new(issuer, ca.ca_pem())?;
        let service = start_and_wait(&spec, &api)?;
        Ok(Idp {
            service,
            api,
            config,
            ca,
            spec,
            _dir: dir,
        })
    }

    /// Stops and starts the process again on the same port with the same state: keys, issued tokens and
    /// generated client keys survive, pending device codes and faults do not.
    pub fn restart(&mut self) -> Result<()> {
        self.service.stop();
        self.service = start_and_wait(&self.spec, &self.api)?;
        Ok(())
    }

    /// Stops the process (for tests of an IdP that is gone); [`Idp::restart`] brings it back.
    pub fn stop(&mut self) {
        self.service.stop();
    }

    pub fn api(&self) -> &IdpApi {
        &self.api
    }

    pub fn config(&self) -> &IdpConfig {
        &self.config
    }

    /// The CA that signed the IdP's certificate (for trust bundles, see [`TestCa::system_bundle_with_ca`]).
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    pub fn ca_pem_path(&self) -> PathBuf {
        self.ca.ca_path()
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The IdP's log (one JSON line per request, never a full token).
    pub fn logs(&self) -> String {
        self.service.logs()
    }

    /// A callback for [`crate::psql::Psql::oauth_sql`] that approves the code psql printed as `user`.
    pub fn approve_as(
        &self,
        user: &str,
    ) -> impl FnOnce(&DevicePrompt) -> std::result::Result<(), String> + Send + 'static {
        let api = self.api.clone();
        let user = user.to_string();
        move |prompt: &DevicePrompt| {
            api.approve(&prompt.user_code, &user)
                .map_err(|e| e.to_string())
        }
    }
}

fn start_and_wait(spec: &ServiceSpec, api: &IdpApi) -> Result<Service> {
    let mut service = Service::start(spec.clone())?;
    let ready_line = format!("READY {}", api.issuer());
    let log_path = service.log_path().to_path_buf();
    service.wait_ready(Duration::from_secs(30), || {
        let printed = std::fs::read(&log_path)
            .map(|b| String::from_utf8_lossy(&b).contains(&ready_line))
            .unwrap_or(false);
        printed && matches!(api.get_within("/healthz", Duration::from_secs(2)), Ok(Some(r)) if r.status == 200)
    })?;
    Ok(service)
}

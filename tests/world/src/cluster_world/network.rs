//! The world's own network: a network namespace with no route out, joined to the host by one veth pair, and a
//! private mount namespace for the node's processes.
//!
//! Inside the namespace: the node's address on `node0` (one end of a veth pair whose other end forwards nothing,
//! so the default route leads nowhere), the pods' bridge made by CNI, and the Service addresses kube-proxy makes.
//! The host reaches the API server and the kubelet's port-forwards through the veth pair's inner address; nothing
//! inside can reach past the host end (the host forwards nothing from or into the link, and filters in both
//! namespaces let only the host end's address across it); pods reach the host end itself, where test services that
//! stand for the world outside the cluster (the IdP, object storage) listen, and which answers only the link and
//! this machine's own processes. Node processes also share one private mount
//! namespace, so what containerd and the kubelet mount (overlays, pod volumes, pod network namespaces, a
//! resolv.conf naming the world's DNS) never shows on the host and vanishes with the world.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Result, WorldError};
use crate::process::{Service, ServiceSpec};

/// The node's address inside the namespace (kubelet, API server advertise address, DNS).
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
/// Pod addresses (the CNI bridge's range) and Service addresses (the API server's range).
pub const POD_CIDR: &str = "10.244.0.0/24";
pub const SERVICE_CIDR: &str = "10.96.0.0/24";
/// The `kubernetes` Service's address (the first of the range).
pub const API_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// The namespace, the veth pair and the holder of the private mount namespace; all removed on drop.
pub struct WorldNetwork {
    name: String,
    host_link: String,
    /// The host's end of the veth pair and the namespace's end (what the host connects to).
    pub host_ip: Ipv4Addr,
    pub inner_ip: Ipv4Addr,
    /// `sleep infinity` in the private mount namespace: its /proc entry names the namespace to join.
    holder: Option<Service>,
}

impl WorldNetwork {
    /// Makes the namespace `pgrator-<id>` and its links. `id` must be unique among running worlds.
    pub fn create(id: &str, state: &Path) -> Result<WorldNetwork> {
        let name = format!("pgrator-{id}");
        // Interface names are at most 15 bytes.
        let host_link = format!("pgw{}", &id[id.len().saturating_sub(8)..]);
        let slot = free_slot()?;
        let host_ip = Ipv4Addr::new(10, 251, slot, 1);
        let inner_ip = Ipv4Addr::new(10, 251, slot, 2);
        let mut net = WorldNetwork {
            name,
            host_link,
            host_ip,
            inner_ip,
            holder: None,
        };
        net.build(state)?;
        Ok(net)
    }

    fn build(&mut self, state: &Path) -> Result<()> {
        let ns = self.name.clone();
        let host_link = self.host_link.clone();
        let node = NODE_IP.to_string();
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "link", "add", &host_link, "type", "veth", "peer", "name", "world0", "netns", &ns,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", self.host_ip),
            "dev",
            &host_link,
        ])?;
        ip(&["link", "set", &host_link, "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/30", self.inner_ip),
            "dev",
            "world0",
        ])?;
        ip(&["-n", &ns, "link", "set", "world0", "up"])?;
        // The node's own address and the default route the kubelet wants, on a veth pair that leads nowhere:
        // its far end forwards nothing (this kernel has no dummy interfaces).
        ip(&[
            "-n",
            &ns,
            "link",
            "add",
            "node0",
            "type",
            "veth",
            "peer",
            "name",
            "node0-end",
        ])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{node}/24"),
            "dev",
            "node0",
        ])?;
        ip(&["-n", &ns, "link", "set", "node0", "up"])?;
        ip(&["-n", &ns, "link", "set", "node0-end", "up"])?;
        ip(&["-n", &ns, "route", "add", "default", "dev", "node0"])?;
        for (key, value) in [
            // Pods reach Services and the node through the namespace's own routing.
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.node0-end.forwarding", "0"),
            ("net.bridge.bridge-nf-call-iptables", "1"),
        ] {
            self.run_inside("sysctl", &["-qw", &format!("{key}={value}")])?;
        }
        // Pods may reach the host's end of the link and nothing past it (the test services that play the world
        // outside the cluster, such as the IdP, listen there). Routing alone already keeps everything else on
        // node0's dead end; these rules hold even if a route is added (in mangle, which kube-proxy leaves alone):
        // only the host end leaves or enters by the link. Pod sources are rewritten to the namespace's end, so
        // the host answers on the link instead of sending replies for pod addresses out of its default route.
        let host = self.host_ip.to_string();
        for rule in [
            [
                "-t",
                "mangle",
                "-A",
                "POSTROUTING",
                "-o",
                "world0",
                "!",
                "-d",
                &host,
                "-j",
                "DROP",
            ],
            [
                "-t",
                "mangle",
                "-A",
                "PREROUTING",
                "-i",
                "world0",
                "!",
                "-s",
                &host,
                "-j",
                "DROP",
            ],
            [
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                "world0",
                "-j",
                "MASQUERADE",
                "",
                "",
                "",
            ],
        ] {
            let args: Vec<&str> = std::iter::once("-w")
                .chain(rule.into_iter().filter(|a| !a.is_empty()))
                .collect();
            self.run_inside("iptables", &args)?;
        }
        // On the host: nothing that arrives from the world is forwarded, nothing is forwarded into it, and the
        // host end's address answers only the link and this machine's own processes.
        sysctl_host(&format!("net.ipv4.conf.{host_link}.forwarding"), "0")?;
        for rule in self.host_rules() {
            iptables_host("-I", &rule)?;
        }
        // The private mount namespace, held open by a sleeping process of its own.
        let holder = Service::start(ServiceSpec::new("world-mounts", "nsenter").args([
            format!("--net={}", self.netns_path().display()),
            "--".into(),
            "unshare".into(),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "sleep".into(),
            "infinity".into(),
        ]))?;
        self.holder = Some(holder);
        self.wait_for_private_mounts()?;
        let resolv = state.join("resolv.conf");
        std::fs::write(
            &resolv,
            format!("nameserver {NODE_IP}\nsearch cluster.local\n"),
        )
        .map_err(|e| WorldError::io("writing the world's resolv.conf", e))?;
        let resolv = resolv.display().to_string();
        // Node processes resolve names with the world's DNS only, never with the host's resolvers; pod network
        // namespaces and pod logs live and die with the mount namespace.
        for args in [
            vec!["--bind", resolv.as_str(), "/etc/resolv.conf"],
            vec!["-t", "tmpfs", "tmpfs", "/run/netns"],
            vec!["-t", "tmpfs", "tmpfs", "/var/log/pods"],
            vec!["-t", "tmpfs", "tmpfs", "/var/log/containers"],
        ] {
            if let Some(dir) = args.last().filter(|d| d.starts_with("/var/log")) {
                self.run_inside("mkdir", &["-p", dir])?;
            }
            self.run_inside("mount", &args)?;
        }
        Ok(())
    }

    /// Waits until the holder has entered its own mount namespace (unshare runs before sleep).
    fn wait_for_private_mounts(&mut self) -> Result<()> {
        let own = std::fs::read_link("/proc/self/ns/mnt").ok();
        let mut holder_pid = None;
        if let Some(holder) = self.holder.as_mut() {
            holder_pid = holder.pid();
            let pid = holder_pid;
            holder.wait_ready(std::time::Duration::from_secs(10), || {
                pid.and_then(|p| std::fs::read_link(format!("/proc/{p}/ns/mnt")).ok())
                    .is_some_and(|ns| Some(&ns) != own.as_ref())
                    && pid.is_some_and(|p| {
                        std::fs::read_to_string(format!("/proc/{p}/comm"))
                            .is_ok_and(|c| c.trim() == "sleep")
                    })
            })?;
        }
        holder_pid.map(|_| ()).ok_or_else(|| WorldError::Service {
            service: "world network".into(),
            message: "the mount namespace holder has no pid".into(),
        })
    }

    /// The host's own filter rules for this world (added with the link, removed with it).
    fn host_rules(&self) -> Vec<Vec<String>> {
        let link = self.host_link.clone();
        vec![
            vec![
                "FORWARD".into(),
                "-o".into(),
                link.clone(),
                "-j".into(),
                "DROP".into(),
            ],
            [
                "INPUT",
                "-d",
                &self.host_ip.to_string(),
                "!",
                "-i",
                &link,
                "-m",
                "addrtype",
                "!",
                "--src-type",
                "LOCAL",
                "-j",
                "DROP",
            ]
            .map(String::from)
            .to_vec(),
        ]
    }

    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// How to enter the world's namespaces (an owned value, to keep while the world changes).
    pub fn entry(&self) -> NsEntry {
        NsEntry {
            netns: self.netns_path(),
            mount: self
                .holder
                .as_ref()
                .and_then(Service::pid)
                .map(|pid| PathBuf::from(format!("/proc/{pid}/ns/mnt"))),
        }
    }

    /// Runs a command to completion inside the namespaces; fails with its output.
    pub fn run_inside(&self, program: &str, args: &[&str]) -> Result<String> {
        self.entry().run_inside(program, args)
    }

    /// The inode of the private mount namespace, to find every process that lives in it.
    pub fn mount_ns(&self) -> Option<PathBuf> {
        self.entry().mount.and_then(|p| std::fs::read_link(p).ok())
    }
}

/// The namespaces a world's process enters: its network namespace and, once made, its private mount namespace.
#[derive(Debug, Clone)]
pub struct NsEntry {
    netns: PathBuf,
    mount: Option<PathBuf>,
}

impl NsEntry {
    fn nsenter_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> =
            vec![format!("--net={}", self.netns.display()).into()];
        if let Some(mnt) = &self.mount {
            args.push(format!("--mount={}", mnt.display()).into());
        }
        args.push("--".into());
        args
    }

    /// `spec` rewritten to run inside the namespaces.
    pub fn inside(&self, spec: ServiceSpec) -> ServiceSpec {
        let mut args = self.nsenter_args();
        args.push(spec.program.clone().into_os_string());
        args.extend(spec.args.iter().cloned());
        ServiceSpec {
            program: PathBuf::from("nsenter"),
            args,
            ..spec
        }
    }

    /// Runs a command to completion inside the namespaces; fails with its output.
    pub fn run_inside(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("nsenter");
        cmd.args(self.nsenter_args()).arg(program).args(args);
        checked(cmd, &format!("{program} {}", args.join(" ")))
    }
}

impl Drop for WorldNetwork {
    fn drop(&mut self) {
        drop(self.holder.take());
        for rule in self.host_rules() {
            let _ = iptables_host("-D", &rule);
        }
        // Deleting the namespace removes both veth pairs (the host end with it).
        let _ = ip(&["netns", "delete", &self.name]);
        let _ = ip(&["link", "delete", &self.host_link]);
    }
}

/// The first 10.251.<slot>.0/30 no host interface uses (several worlds may run at once).
fn free_slot() -> Result<u8> {
    let used = checked(
        {
            let mut c = Command::new("ip");
            c.args(["-4", "-o", "addr", "show"]);
            c
        },
        "ip -4 -o addr show",
    )?;
    (1..=250u8)
        .find(|slot| !used.contains(&format!(" 10.251.{slot}.")))
        .ok_or_else(|| WorldError::Service {
            service: "world network".into(),
            message: "no free 10.251.x.0/30 for the host link".into(),
        })
}

fn sysctl_host(key: &str, value: &str) -> Result<String> {
    let mut cmd = Command::new("sysctl");
    cmd.arg("-qw").arg(format!("{key}={value}"));
    checked(cmd, &format!("sysctl {key}={value}"))
}

/// `iptables -w <op> <chain> <rule...>` on the host (`op`: -I to add first, -D to delete).
fn iptables_host(op: &str, rule: &[String]) -> Result<String> {
    let mut cmd = Command::new("iptables");
    cmd.arg("-w").arg(op).args(rule);
    checked(cmd, &format!("iptables {op} {}", rule.join(" ")))
}

fn ip(args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    checked(cmd, &format!("ip {}", args.join(" ")))
}

fn checked(mut cmd: Command, shown: &str) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| WorldError::io(format!("running {shown}"), e))?;
    if !out.status.success() {
        return Err(WorldError::Service {
            service: "world network".into(),
            message: format!(
                "{shown} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

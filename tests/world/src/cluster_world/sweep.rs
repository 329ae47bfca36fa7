//! What a node leaves behind when its processes are stopped: containerd's shims and the containers they run are
//! not children of anything the world started. They all live in the world's private mount namespace or its
//! cgroup tree, so the sweep kills every process in either, then removes the cgroup tree.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Result, WorldError};

const CGROUP_FS: &str = "/sys/fs/cgroup";

/// The cgroup v1 hierarchies (one directory per mounted controller set).
fn hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir(CGROUP_FS)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default()
}

/// Makes `root` (e.g. `/pgrator-123`) in every hierarchy; cpuset needs its CPUs and memory nodes filled in.
pub(super) fn create_cgroup_root(root: &str) -> Result<()> {
    for h in hierarchies() {
        let dir = h.join(root.trim_start_matches('/'));
        std::fs::create_dir_all(&dir)
            .map_err(|e| WorldError::io(format!("creating {}", dir.display()), e))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(value) = std::fs::read_to_string(h.join(file)) {
                std::fs::write(dir.join(file), value.trim()).map_err(|e| {
                    WorldError::io(format!("writing {}", dir.join(file).display()), e)
                })?;
            }
        }
    }
    Ok(())
}

/// Every process in the tree under `root`, in any hierarchy.
pub(super) fn cgroup_pids(root: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for h in hierarchies() {
        collect_pids(&h.join(root.trim_start_matches('/')), &mut pids);
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn collect_pids(dir: &Path, pids: &mut Vec<u32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), pids);
            }
        }
    }
}

/// Every process whose mount namespace is `ns` (as `readlink /proc/<pid>/ns/mnt` names it).
pub(super) fn mount_ns_pids(ns: &Path) -> Vec<u32> {
    let own = std::process::id();
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| *pid != own)
                .filter(|pid| {
                    std::fs::read_link(format!("/proc/{pid}/ns/mnt")).is_ok_and(|l| l == ns)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs everything in the cgroup tree and the mount namespace until nothing is left (or 10 s pass).
pub(super) fn kill_all(root: &str, mount_ns: Option<&Path>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut pids = cgroup_pids(root);
        if let Some(ns) = mount_ns {
            pids.extend(mount_ns_pids(ns));
        }
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            // SAFETY: kill(2) on a pid read from the world's own cgroup tree or mount namespace; no memory shared.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes the (now empty) cgroup tree, deepest directories first.
pub(super) fn remove_cgroup_root(root: &str) {
    for h in hierarchies() {
        remove_tree(&h.join(root.trim_start_matches('/')));
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

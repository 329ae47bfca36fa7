//! A Kubernetes control plane of the test world for a person with kubectl (`just kube-up` / `just kube-down`).
//!
//! `up` starts `serve` in the background and waits until the control plane is ready; `serve` runs it until a
//! stop file appears; `down` creates the stop file and waits for `serve` to finish. Everything lives in one state
//! directory (default `$PGRATOR_CACHE/kube-up`): pid, log, kubeconfig and etcd data.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use pgrator_world::kube::ControlPlane;

const USAGE: &str = "usage: pgrator-kube-up {up|down|serve} [STATE_DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let state = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| pgrator_world::env::cache_dir().join("kube-up"));
    let result = match args.first().map(String::as_str) {
        Some("up") => up(&state),
        Some("down") => down(&state),
        Some("serve") => serve(&state),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pgrator-kube-up: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Paths {
    pid: PathBuf,
    log: PathBuf,
    ready: PathBuf,
    stop: PathBuf,
    data: PathBuf,
}

fn paths(state: &Path) -> Paths {
    Paths {
        pid: state.join("serve.pid"),
        log: state.join("serve.log"),
        ready: state.join("ready"),
        stop: state.join("stop"),
        data: state.join("data"),
    }
}

fn up(state: &Path) -> Result<(), String> {
    let p = paths(state);
    if let Some(pid) = running_pid(&p.pid) {
        println!("already running (pid {pid})");
        return print_ready(&p.ready);
    }
    std::fs::create_dir_all(state).map_err(|e| format!("creating {}: {e}", state.display()))?;
    for stale in [&p.ready, &p.stop, &p.pid] {
        let _ = std::fs::remove_file(stale);
    }
    let log =
        std::fs::File::create(&p.log).map_err(|e| format!("creating {}: {e}", p.log.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    // Its own process group, so the terminal's Ctrl-C and the exit of `just` leave it running.
    let mut child = std::os::unix::process::CommandExt::process_group(
        Command::new(exe)
            .arg("serve")
            .arg(state)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err),
        0,
    )
    .spawn()
    .map_err(|e| format!("starting the control plane: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while !p.ready.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the control plane did not start ({status}); log {}:\n{}",
                p.log.display(),
                tail(&p.log)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the control plane was not ready within 300 s; log {}",
                p.log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    print_ready(&p.ready)
}

fn serve(state: &Path) -> Result<(), String> {
    let p = paths(state);
    std::fs::write(&p.pid, std::process::id().to_string())
        .map_err(|e| format!("writing the pid file: {e}"))?;
    // A fresh cluster every time: a new CA would not match what an old etcd holds.
    let _ = std::fs::remove_dir_all(&p.data);
    let plane = ControlPlane::start_in(&p.data).map_err(|e| e.to_string())?;
    let bin_dir = plane
        .kubectl()
        .program()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let t = plane.timings();
    let summary = format!(
        "Kubernetes {} at {} (started in {:.1} s: etcd {:.1} s, kube-apiserver {:.1} s, CRDs {:.1} s, \
         kube-controller-manager {:.1} s)\n\
         export KUBECONFIG={}\n\
         export PATH={}:$PATH    # kubectl {}\n",
        plane.version(),
        plane.server_url(),
        t.total.as_secs_f64(),
        t.etcd.as_secs_f64(),
        t.apiserver.as_secs_f64(),
        t.crds.as_secs_f64(),
        t.controller_manager.as_secs_f64(),
        plane.kubeconfig().display(),
        bin_dir.display(),
        plane.version(),
    );
    std::fs::write(&p.ready, summary).map_err(|e| format!("writing {}: {e}", p.ready.display()))?;
    while !p.stop.exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(plane);
    for done in [&p.ready, &p.stop, &p.pid] {
        let _ = std::fs::remove_file(done);
    }
    let _ = std::fs::remove_dir_all(&p.data);
    Ok(())
}

fn down(state: &Path) -> Result<(), String> {
    let p = paths(state);
    let Some(pid) = running_pid(&p.pid) else {
        println!("not running");
        return Ok(());
    };
    std::fs::write(&p.stop, b"").map_err(|e| format!("writing {}: {e}", p.stop.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while running_pid(&p.pid) == Some(pid) {
        if Instant::now() > deadline {
            return Err(format!(
                "the control plane (pid {pid}) did not stop within 60 s; log {}",
                p.log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("stopped");
    Ok(())
}

/// The pid in the pid file, if that process is still this program serving.
fn running_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (cmdline.contains("pgrator-kube-up") && cmdline.contains("serve")).then_some(pid)
}

fn print_ready(ready: &Path) -> Result<(), String> {
    let text =
        std::fs::read_to_string(ready).map_err(|e| format!("reading {}: {e}", ready.display()))?;
    print!("{text}");
    Ok(())
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

//! A service process of the test world: logs captured to a file, readiness probing, teardown on drop.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, WorldError};

/// An unprivileged account for servers that refuse to run as root (PostgreSQL).
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// `nobody:nogroup` when we are root; `None` when we are already unprivileged.
    pub fn unprivileged() -> Option<RunAs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        #[allow(unsafe_code)]
        let euid = unsafe { libc::geteuid() };
        (euid == 0).then_some(RunAs {
            uid: 65534,
            gid: 65534,
        })
    }

    /// Gives a path to this account (for data directories the server must own).
    pub fn chown(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| WorldError::io(format!("chown {}", path.display()), e))
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<PathBuf>,
    pub run_as: Option<RunAs>,
}

impl ServiceSpec {
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        ServiceSpec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            run_as: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn run_as(mut self, who: Option<RunAs>) -> Self {
        self.run_as = who;
        self
    }
}

/// A running service. Dropping it stops the whole process group (SIGTERM, then SIGKILL after a grace period);
/// when the dropping thread is panicking (a failed test), the log tail is printed and the log file is kept.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
    log_dir: Option<tempfile::TempDir>,
    grace: Duration,
}

impl Service {
    pub fn start(spec: ServiceSpec) -> Result<Service> {
        let log_dir = tempfile::Builder::new()
            .prefix(&format!("pgrator-{}-log-", spec.name))
            .tempdir()
            .map_err(|e| WorldError::io("creating a log directory", e))?;
        let log_path = log_dir.path().join(format!("{}.log", spec.name));
        let log = File::create(&log_path)
            .map_err(|e| WorldError::io(format!("creating {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| WorldError::io("duplicating the log file", e))?;
        if let Some(who) = spec.run_as {
            who.chown(&log_path)?;
            who.chown(log_dir.path())?;
        }

        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        if let Some(who) = spec.run_as {
            cmd.uid(who.uid).gid(who.gid);
        }
        die_with_parent(&mut cmd);
        let child = spawn_from_long_lived_thread(cmd).map_err(|e| WorldError::Service {
            service: spec.name.clone(),
            message: format!("could not start {}: {e}", spec.program.display()),
        })?;
        Ok(Service {
            name: spec.name,
            child: Some(child),
            log_path,
            log_dir: Some(log_dir),
            grace: Duration::from_secs(5),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The whole log so far.
    pub fn logs(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The log written since `offset` (a previous `log_len`), for assertions about one step.
    pub fn logs_since(&self, offset: u64) -> String {
        let mut out = Vec::new();
        if let Ok(mut f) = File::open(&self.log_path)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let _ = f.read_to_end(&mut out);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log_path)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let all = self.logs();
        let v: Vec<&str> = all.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Polls `probe` until it returns true. Fails, with the log tail, when the process exits or `timeout` passes.
    pub fn wait_ready<F: FnMut() -> bool>(
        &mut self,
        timeout: Duration,
        mut probe: F,
    ) -> Result<()> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            if probe() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(self.not_ready(start, format!("the process exited ({status})")));
            }
            if start.elapsed() > timeout {
                return Err(self.not_ready(start, "timed out".to_string()));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&mut self, timeout: Duration, needle: &str) -> Result<()> {
        let path = self.log_path.clone();
        self.wait_ready(timeout, || {
            std::fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
        })
    }

    fn not_ready(&self, start: Instant, reason: String) -> WorldError {
        WorldError::NotReady {
            service: self.name.clone(),
            waited_ms: start.elapsed().as_millis(),
            reason,
            log_tail: self.log_tail(40),
        }
    }

    /// Sends a signal to the service's main process.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped); no memory is shared.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        if rc != 0 {
            return Err(WorldError::io(
                format!("signalling {}", self.name),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Stops the service now (SIGTERM to its process group, SIGKILL after the grace period).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as libc::pid_t;
        // SAFETY: signalling the process group we created with setsid() at spawn; no memory is shared.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.grace;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    // SAFETY: as above; SIGKILL to our own process group.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        // Children that outlived the leader (e.g. postgres backends) go with the group.
        // SAFETY: as above.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log (kept at {}) ---\n{}\n--- end of {} log ---",
                self.name,
                self.log_path.display(),
                self.log_tail(80),
                self.name
            );
            if let Some(dir) = self.log_dir.take() {
                let _ = dir.keep();
            }
        }
    }
}

/// Spawns on one thread that lives as long as the process. PR_SET_PDEATHSIG fires when the *thread* that forked
/// the child ends, and test harnesses run each test on its own thread: a service shared by several tests (one
/// control plane per test binary) must not die with the test that happened to start it.
fn spawn_from_long_lived_thread(cmd: Command) -> std::io::Result<Child> {
    use std::sync::mpsc::{Sender, channel};
    use std::sync::{Mutex, OnceLock};
    type Request = (Command, Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("pgrator-world-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| eprintln!("pgrator-world: cannot start the spawner thread: {e}"));
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = channel();
    let sent = spawner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, reply_tx));
    if sent.is_err() {
        return Err(std::io::Error::other("the spawner thread is gone"));
    }
    reply_rx
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the spawner thread did not answer")))
}

/// Puts the child in its own session (so the whole group can be signalled) and asks the kernel to kill it when
/// the test process dies, so a crashed or killed test binary leaves no servers behind.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec; it calls only async-signal-safe functions (setsid, prctl,
    // getppid, _exit style return of an error) and touches no memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

//! The real `veritas` binary as a child process: started, waited for, killed with `SIGKILL`,
//! restarted on the same port and data directory.

use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long a starting process may take to answer (recovery of a large data dir included).
pub const START_DEADLINE: Duration = Duration::from_secs(120);

/// Finds the `veritas` binary: `explicit` if given, else `target/<profile>/veritas` beside the
/// running executable (`target/<profile>/veritas-reliability` or a test in `…/deps/`).
pub fn find_veritas(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("current executable")?;
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("veritas");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "no veritas binary beside {}; build it (cargo build --bin veritas) or pass --veritas",
        exe.display()
    )
}

/// A run's working directory: the one asked for (created if missing, kept afterwards), or a
/// temporary one removed when this is dropped.
pub struct WorkDir {
    path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl WorkDir {
    /// `dir` if given, else a fresh temporary directory.
    pub fn new(dir: Option<&Path>) -> anyhow::Result<WorkDir> {
        Ok(match dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                WorkDir {
                    path: d.to_path_buf(),
                    _tmp: None,
                }
            }
            None => {
                let tmp = tempfile::tempdir().context("creating a temporary directory")?;
                WorkDir {
                    path: tmp.path().to_path_buf(),
                    _tmp: Some(tmp),
                }
            }
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A free loopback port, chosen by the OS (bound and released: the broker binds it next).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends `signal` (e.g. `TERM`) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}

/// A `veritas broker` child process on a fixed loopback port.
pub struct BrokerProcess {
    exe: PathBuf,
    data_dir: PathBuf,
    addr: SocketAddr,
    extra: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    /// Starts so far (1 after [`BrokerProcess::start`]).
    pub starts: u32,
}

impl BrokerProcess {
    /// Starts `veritas broker --listen 127.0.0.1:<free port> --data-dir <data_dir> <extra…>`,
    /// appending its output to `log`, and waits until it accepts connections.
    pub fn start(
        exe: &Path,
        data_dir: &Path,
        extra: &[String],
        log: &Path,
    ) -> anyhow::Result<BrokerProcess> {
        let mut last = None;
        for _ in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut b = BrokerProcess {
                exe: exe.to_path_buf(),
                data_dir: data_dir.to_path_buf(),
                addr,
                extra: extra.to_vec(),
                log: log.to_path_buf(),
                child: None,
                starts: 0,
            };
            match b.spawn() {
                Ok(()) => return Ok(b),
                Err(e) => last = Some(e), // most likely the port was taken in between
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("broker did not start")))
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The child's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(&self.exe)
            .arg("broker")
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            .env("VERITAS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.exe.display()))?;
        self.child = Some(child);
        self.starts += 1;
        wait_until_listening(self.child.as_mut(), self.addr, &self.log)
    }

    /// `SIGKILL`s the broker and reaps it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().context("SIGKILL")?;
            c.wait().context("reaping the broker")?;
        }
        Ok(())
    }

    /// Replaces the extra flags used by the next [`BrokerProcess::restart`].
    pub fn set_args(&mut self, extra: &[String]) {
        self.extra = extra.to_vec();
    }

    /// Starts the broker again on the same port and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9()?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart failed ({e:#}); retrying");
                    if let Some(mut c) = self.child.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    std::thread::sleep(Duration::from_millis(200)); // backoff before retrying a bind
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops the broker with `SIGTERM` (clean shutdown) and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM")?;
            let status = c.wait()?;
            if !status.success() {
                bail!("broker exited with {status} on SIGTERM");
            }
        }
        Ok(())
    }

    /// Whether the child is still running (false if it exited on its own).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// The last `n` lines of the broker's output.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// Waits until `addr` accepts a TCP connection, failing early if `child` exits.
pub fn wait_until_listening(
    child: Option<&mut Child>,
    addr: SocketAddr,
    log: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    let mut child = child;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if let Some(c) = child.as_deref_mut() {
            if let Some(status) = c.try_wait()? {
                bail!("exited with {status} before listening:\n{}", tail(log, 20));
            }
        }
        if Instant::now() > deadline {
            bail!("not listening on {addr} after {START_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20)); // polling a condition, not synchronising
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A child process with its output going to a log file.
pub struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Spawns `exe args…` with stdout and stderr appended to `log`.
    pub fn spawn(
        exe: &Path,
        args: &[String],
        log: &Path,
        envs: &[(&str, &str)],
    ) -> anyhow::Result<Proc> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err: File = out.try_clone()?;
        let child = Command::new(exe)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawning {}", exe.display()))?;
        Ok(Proc {
            child,
            log: log.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `SIGKILL`s and reaps the process.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// `SIGTERM`s the process and waits for it to exit on its own.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        signal(self.child.id(), "TERM")?;
        Ok(self.child.wait()?)
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// The last `n` lines of the process's output.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

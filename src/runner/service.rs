//! A service: a process started in the background for the steps of its scope (a server for a
//! benchmark client), in a process group of its own, with its output in its own log. It is
//! ready when its readiness check passes within the ready timeout; it is checked to be alive
//! before every step of its scope; and it is stopped (SIGTERM to the group, a grace period,
//! SIGKILL) when its scope ends, on every path: [`Service`] stops it when dropped, so success,
//! failure, a time limit, Ctrl-C and a panic all end it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{self, signal_name};
use super::signals;
use crate::plan::{Readiness, ServiceSpec, Step};

/// Why a service did not start, or died.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("`{program}` not found")]
    NotFound { program: String },
    #[error("cannot start the {label} service: {source}")]
    Spawn {
        label: String,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the {label} service was not ready after {} s ({check}); stopped it\n{tail}",
        waited.as_secs()
    )]
    NotReady {
        label: String,
        waited: Duration,
        check: String,
        tail: String,
    },
    #[error("the {label} service exited before it was ready ({status}){}\n{tail}", retried(*attempts))]
    DiedStarting {
        label: String,
        status: String,
        attempts: u32,
        tail: String,
    },
    #[error("the {label} service died ({status}) while the case ran\n{tail}")]
    Died {
        label: String,
        status: String,
        tail: String,
    },
    #[error("interrupted by {} while the {label} service started; stopped it", signal_name(*signal))]
    Interrupted { label: String, signal: i32 },
    #[error("the {label} service's readiness check is invalid: {reason}")]
    BadCheck { label: String, reason: String },
}

fn retried(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts on different ports")
    } else {
        String::new()
    }
}

/// How often readiness and liveness are polled.
const POLL: Duration = Duration::from_millis(50);
/// Attempts on fresh ports when a service given `{port}` dies before it is ready (another
/// process took the port between our probe and its bind).
const PORT_ATTEMPTS: u32 = 3;

/// A running service. Dropping it stops it.
pub struct Service {
    label: &'static str,
    child: Child,
    pgid: i32,
    /// Killed by the watchdog if perfgate itself is killed while the service runs.
    _watched: super::orphans::GroupGuard,
    log: PathBuf,
    grace: Duration,
    /// `host:port` it serves on, when known.
    pub addr: Option<String>,
    stopped: bool,
}

/// What the steps after a ready service see of it.
#[derive(Debug, Clone, Default)]
pub struct ServiceContext {
    /// Extra environment of later steps (`PERFGATE_<LABEL>_ADDR`, ...).
    pub env: Vec<(String, String)>,
    /// Placeholders replaced in later steps' argv and env (`{server.addr}` → `127.0.0.1:8000`).
    pub substitutions: Vec<(String, String)>,
}

impl ServiceContext {
    /// A context holding a fresh per-run secret as `{perfgate.auth_key}`: 64 hex digits, as
    /// upstream's `secrets.token_hex(32)`, for the internal requests of disaggregated servers.
    pub fn with_secret() -> ServiceContext {
        let mut c = ServiceContext::default();
        c.substitutions
            .push(("{perfgate.auth_key}".into(), secret_hex()));
        c
    }

    /// Adds a ready service's address.
    pub fn add(&mut self, label: &str, addr: &str) {
        let (host, port) = addr.rsplit_once(':').map_or((addr, ""), |(h, p)| (h, p));
        let (host, port) = (host.to_string(), port.to_string());
        let url = format!("http://{addr}");
        let upper: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        for (key, value) in [
            ("addr", addr.to_string()),
            ("host", host),
            ("port", port),
            ("url", url),
        ] {
            self.env.push((
                format!("PERFGATE_{upper}_{}", key.to_ascii_uppercase()),
                value.clone(),
            ));
            self.substitutions
                .push((format!("{{{label}.{key}}}"), value));
        }
    }

    /// `s` with every placeholder replaced.
    pub fn apply(&self, s: &str) -> String {
        substitute(s, &self.substitutions)
    }
}

/// 64 hex digits from the kernel's random source. A value PyYAML would read as another type
/// (all digits, say) is drawn again, so the YAML it is written into reads it as a string
/// unquoted, exactly as upstream's key is written.
fn secret_hex() -> String {
    use std::io::Read as _;
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        let got = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        if got.is_err() {
            // No random source: a key unique to this process and moment (only the servers of
            // this test, on this machine, share it).
            use sha2::Digest;
            let seed = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
            bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes()));
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if crate::llm_api::pyyaml::plain_resolves_to_str(&hex) {
            return hex;
        }
    }
    "f".repeat(64)
}

/// Replaces every `(from, to)` in `s` (placeholders never overlap).
pub fn substitute(s: &str, substitutions: &[(String, String)]) -> String {
    if !s.contains('{') {
        return s.to_string();
    }
    let mut out = s.to_string();
    for (from, to) in substitutions {
        if out.contains(from.as_str()) {
            out = out.replace(from.as_str(), to);
        }
    }
    out
}

impl Service {
    /// Starts the service of `step` and waits until it is ready. `env` is the step's
    /// environment (already expanded), `context` what earlier services gave. `deadline` is the
    /// test's time limit, when it has one.
    pub fn start(
        step: &Step,
        env: &[(String, String)],
        context: &ServiceContext,
        grace: Duration,
        deadline: Option<Instant>,
    ) -> Result<Service, ServiceError> {
        let spec = step
            .service
            .as_ref()
            .ok_or_else(|| ServiceError::BadCheck {
                label: step.label.into(),
                reason: "the step has no service contract".into(),
            })?;
        let wants_port = step.argv.iter().any(|a| a.contains("{port}"))
            || env.iter().any(|(_, v)| v.contains("{port}"))
            || readiness_text(&spec.ready).contains("{port}");
        let attempts = if wants_port { PORT_ATTEMPTS } else { 1 };
        let mut last = None;
        for attempt in 1..=attempts {
            let mut subs = context.substitutions.clone();
            let port = if wants_port {
                let p = free_port().map_err(|source| ServiceError::Spawn {
                    label: step.label.into(),
                    source,
                })?;
                subs.push(("{port}".into(), p.to_string()));
                Some(p)
            } else {
                None
            };
            match Service::try_start(step, spec, env, &subs, port, grace, deadline) {
                Err(ServiceError::DiedStarting {
                    label,
                    status,
                    tail,
                    ..
                }) if attempt < attempts => {
                    last = Some((status, tail));
                    let _ = label;
                    continue;
                }
                Err(ServiceError::DiedStarting {
                    label,
                    status,
                    tail,
                    ..
                }) => {
                    return Err(ServiceError::DiedStarting {
                        label,
                        status,
                        attempts: attempt,
                        tail,
                    });
                }
                other => return other,
            }
        }
        let (status, tail) = last.unwrap_or_default();
        Err(ServiceError::DiedStarting {
            label: step.label.into(),
            status,
            attempts,
            tail,
        })
    }

    fn try_start(
        step: &Step,
        spec: &ServiceSpec,
        env: &[(String, String)],
        subs: &[(String, String)],
        port: Option<u16>,
        grace: Duration,
        deadline: Option<Instant>,
    ) -> Result<Service, ServiceError> {
        let argv: Vec<String> = step.argv.iter().map(|a| substitute(a, subs)).collect();
        let (program, args) = argv.split_first().ok_or_else(|| ServiceError::Spawn {
            label: step.label.into(),
            source: std::io::Error::other("empty command"),
        })?;
        if let Readiness::ReportFile { path, .. } = &spec.ready {
            // An address left by an earlier run must not be taken for this one's; the server
            // writes the file but not its directory.
            let io = |source| ServiceError::Io {
                path: path.clone(),
                source,
            };
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
        }
        if let Some(dir) = spec.log.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ServiceError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let log_io = |source| ServiceError::Io {
            path: spec.log.clone(),
            source,
        };
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(log_io)?;
        let start_offset = log.metadata().map_err(log_io)?.len();
        let _ = writeln!(log, "$ {}", crate::textutil::shell_join(&argv));
        let err_log = log.try_clone().map_err(log_io)?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k.clone(), substitute(v, subs))))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .process_group(0);
        super::orphans::die_with_parent(&mut cmd);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ServiceError::NotFound {
                    program: program.clone(),
                });
            }
            Err(source) => {
                return Err(ServiceError::Spawn {
                    label: step.label.into(),
                    source,
                });
            }
        };
        let pgid = child.id() as i32;
        let mut service = Service {
            label: step.label,
            child,
            pgid,
            _watched: super::orphans::guard(pgid),
            log: spec.log.clone(),
            grace,
            addr: port.map(|p| format!("127.0.0.1:{p}")),
            stopped: false,
        };
        let started = Instant::now();
        let until = started + spec.ready_timeout;
        let until = deadline.map_or(until, |d| d.min(until));
        let mut scanned = start_offset;
        let pattern = match &spec.ready {
            Readiness::LogLine { pattern } => {
                Some(regex::Regex::new(&substitute(pattern, subs)).map_err(|e| {
                    ServiceError::BadCheck {
                        label: step.label.into(),
                        reason: format!("pattern `{pattern}`: {e}"),
                    }
                })?)
            }
            _ => None,
        };
        loop {
            if let Some(status) = service.exit_status() {
                service.stop();
                return Err(ServiceError::DiedStarting {
                    label: step.label.into(),
                    status,
                    attempts: 1,
                    tail: process::tail(&spec.log, start_offset, 20),
                });
            }
            if let Some(signal) = signals::interrupted() {
                service.stop();
                return Err(ServiceError::Interrupted {
                    label: step.label.into(),
                    signal,
                });
            }
            let ready = match &spec.ready {
                Readiness::Http { url } => http_ok(&substitute(url, subs)),
                Readiness::LogLine { .. } => pattern
                    .as_ref()
                    .is_some_and(|re| log_matches(&spec.log, &mut scanned, re)),
                Readiness::ReportFile { path, health_path } => match read_addr(path) {
                    Some(addr) => {
                        let ok = http_ok(&format!("http://{addr}{health_path}"));
                        if ok {
                            service.addr = Some(addr);
                        }
                        ok
                    }
                    None => false,
                },
            };
            if ready {
                // Later steps reach the service as its readiness check did (`localhost` stays
                // `localhost`).
                if let Readiness::Http { url } = &spec.ready
                    && let Some(authority) = url_authority(&substitute(url, subs))
                {
                    service.addr = Some(authority);
                }
                return Ok(service);
            }
            if Instant::now() >= until {
                service.stop();
                return Err(ServiceError::NotReady {
                    label: step.label.into(),
                    waited: started.elapsed(),
                    check: describe(&spec.ready, subs),
                    tail: process::tail(&spec.log, start_offset, 20),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn label(&self) -> &'static str {
        self.label
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// How it ended, if it has.
    fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(describe_status(status)),
            Ok(None) => None,
            Err(e) => Some(format!("cannot be waited for: {e}")),
        }
    }

    /// An error with its log tail if it is no longer running.
    pub fn check_alive(&mut self) -> Result<(), ServiceError> {
        match self.exit_status() {
            None => Ok(()),
            Some(status) => {
                self.stop();
                Err(ServiceError::Died {
                    label: self.label.into(),
                    status,
                    tail: process::tail(&self.log, 0, 20),
                })
            }
        }
    }

    /// SIGTERM to its group, SIGKILL after the grace period; idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        process::stop_group(self.pgid, self.grace);
        // Reap the leader (killed by now) so no zombie is left; a process stuck in the kernel
        // is not waited for forever.
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("label", &self.label)
            .field("pgid", &self.pgid)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by {}", signal_name(sig)),
        _ => "ended".into(),
    }
}

fn readiness_text(r: &Readiness) -> String {
    match r {
        Readiness::Http { url } => url.clone(),
        Readiness::LogLine { pattern } => pattern.clone(),
        Readiness::ReportFile { path, health_path } => {
            format!("{}{health_path}", path.display())
        }
    }
}

fn describe(r: &Readiness, subs: &[(String, String)]) -> String {
    match r {
        Readiness::Http { url } => format!("GET {} never answered 200", substitute(url, subs)),
        Readiness::LogLine { pattern } => {
            format!(
                "no line of its output matched `{}`",
                substitute(pattern, subs)
            )
        }
        Readiness::ReportFile { path, health_path } => match read_addr(path) {
            None => format!("it never wrote its address to {}", path.display()),
            Some(addr) => format!("GET http://{addr}{health_path} never answered 200"),
        },
    }
}

/// A port no process is listening on now: bound with port 0, then released for the service.
fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// `host:port` from a report-address file (trtllm-serve writes `host:port`, maybe with a
/// scheme or a trailing newline).
fn read_addr(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    let text = text
        .strip_prefix("http://")
        .unwrap_or(text)
        .trim_end_matches('/');
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    (!host.is_empty()).then(|| text.to_string())
}

/// `host:port` of an `http://` URL.
fn url_authority(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    if authority.contains(':') {
        Some(authority.to_string())
    } else {
        Some(format!("{authority}:80"))
    }
}

/// Does `GET url` answer 200? A plain HTTP/1.0 request with short timeouts: a readiness probe
/// needs nothing more, and a server still loading must not stall the poll.
pub fn http_ok(url: &str) -> bool {
    http_status(url).is_some_and(|s| s == 200)
}

/// The status code of `GET url` (`http://` only), `None` when it cannot be had.
pub fn http_status(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let target = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = target.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 32];
    let mut n = 0;
    while n < head.len() {
        match stream.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => break,
        }
        if head[..n].contains(&b'\n') {
            break;
        }
    }
    let line = std::str::from_utf8(&head[..n]).ok()?;
    let mut parts = line.split_whitespace();
    let proto = parts.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Does the log, from `from` on, hold a line matching `re`? Advances `from` past whole lines.
fn log_matches(log: &Path, from: &mut u64, re: &regex::Regex) -> bool {
    let Ok(mut f) = File::open(log) else {
        return false;
    };
    if f.seek(SeekFrom::Start(*from)).is_err() {
        return false;
    }
    let mut bytes = Vec::new();
    if f.take(4 << 20).read_to_end(&mut bytes).is_err() {
        return false;
    }
    let Some(last_newline) = bytes.iter().rposition(|&b| b == b'\n') else {
        return false;
    };
    let whole = &bytes[..=last_newline];
    *from += whole.len() as u64;
    String::from_utf8_lossy(whole)
        .lines()
        .any(|l| re.is_match(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_environment() {
        let mut c = ServiceContext::default();
        c.add("server", "127.0.0.1:8123");
        assert_eq!(
            c.apply("--url={server.url}/v1 --port={server.port}"),
            "--url=http://127.0.0.1:8123/v1 --port=8123"
        );
        assert!(
            c.env
                .contains(&("PERFGATE_SERVER_ADDR".into(), "127.0.0.1:8123".into()))
        );
        assert_eq!(c.apply("{server.host}"), "127.0.0.1");
        let s = ServiceContext::with_secret();
        let key = s.apply("{perfgate.auth_key}");
        assert_eq!(key.len(), 64);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(
            key,
            ServiceContext::with_secret().apply("{perfgate.auth_key}")
        );
    }

    #[test]
    fn report_addresses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("addr");
        std::fs::write(&p, "localhost:41234\n").expect("write");
        assert_eq!(read_addr(&p).as_deref(), Some("localhost:41234"));
        std::fs::write(&p, "garbage").expect("write");
        assert_eq!(read_addr(&p), None);
        assert_eq!(
            url_authority("http://127.0.0.1:9/health").as_deref(),
            Some("127.0.0.1:9")
        );
    }
}

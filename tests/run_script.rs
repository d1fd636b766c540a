//! `scripts/run.sh` (what `make run` runs) fails fast with Envoy's own error and what to do, runs
//! until Ctrl-C and then cleans up after itself; its ports are the test's own free ones.

mod common;
use common::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const DEVTOOLS: &str = "target/release/trace-inject-devtools";

/// scripts/run.sh with its own ports, base id and (optionally) example folder, its stdout and
/// stderr gathered in one buffer.
struct Run {
    child: Child,
    out: Arc<Mutex<String>>,
    /// The threads copying stdout and stderr into `out`: done at EOF.
    readers: Vec<std::thread::JoinHandle<()>>,
    ports: Ports,
    edge_port: u16,
}

type Ports = [(&'static str, u16); 8];

impl Run {
    fn start(examples: Option<&Path>) -> Run {
        let ports = [
            ("RUN_ECHO_PORT", free_port()),
            ("RUN_COLLECTOR_PORT", free_port()),
            ("RUN_EDGE_PORT", free_port()),
            ("RUN_EDGE_ADMIN_PORT", free_port()),
            ("RUN_SIDECAR_PORT", free_port()),
            ("RUN_SIDECAR_ADMIN_PORT", free_port()),
            ("RUN_OTEL_PORT", free_port()),
            ("RUN_OTEL_ADMIN_PORT", free_port()),
        ];
        Run::start_on(ports, examples, None)
    }

    fn start_on(ports: Ports, examples: Option<&Path>, tmpdir: Option<&Path>) -> Run {
        wasm_built();
        assert!(
            Path::new(DEVTOOLS).exists(),
            "{DEVTOOLS} is missing: run `make devtools` (make e2e does)"
        );
        let edge_port = ports[2].1;
        // SIGINT as a terminal delivers it: a test run started in the background (`make test &`,
        // nohup) inherits SIGINT ignored, which no trap in the script can undo.
        let mut cmd = Command::new("env");
        cmd.args(["--default-signal=INT", "scripts/run.sh"]);
        for (var, port) in ports {
            cmd.env(var, port.to_string());
        }
        // Its own shared-memory ids, apart from a user's `make run` (1000), the harness's
        // (1e6..1.01e8) and the other tests here (up to 10 Envoys each).
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let n = RUNS.fetch_add(1, Ordering::Relaxed) % 10;
        let base_id = 200_000_000 + (std::process::id() % 100_000) * 100 + n * 10;
        cmd.env("RUN_BASE_ID", base_id.to_string());
        // Long enough that only a fast failure, not the timeout, can end the failing runs in time.
        cmd.env("RUN_READY_TIMEOUT", "120");
        // `make run` is the Envoy it installs (1.40: its sidecar examples need 1.37+), whatever
        // version the e2e matrix points the other tests at.
        cmd.env("ENVOY_BIN", ".tools/venv/bin/envoy");
        if let Some(dir) = examples {
            cmd.env("RUN_EXAMPLES", dir);
        }
        if let Some(dir) = tmpdir {
            cmd.env("TMPDIR", dir);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn scripts/run.sh");
        let out = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = Arc::clone(&out);
            readers.push(std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }));
        }
        Run {
            child,
            out,
            readers,
            ports,
            edge_port,
        }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn wait_for_output(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let out = self.output();
            if out.contains(needle) {
                return out;
            }
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} from scripts/run.sh within {timeout:?}; it printed:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The script's exit status, once it exits (within `timeout`), and all it printed.
    fn wait_exit(&mut self, timeout: Duration) -> (i32, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // All it printed is in once the readers reach EOF, shortly after the exit (or
                // never, if a process it started kept the pipes open: then after 5 s).
                let eof = Instant::now() + Duration::from_secs(5);
                while Instant::now() < eof && !self.readers.iter().all(|r| r.is_finished()) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return (status.code().unwrap_or(-1), self.output());
            }
            if start.elapsed() > timeout {
                kill("-TERM", self.child.id());
                panic!(
                    "scripts/run.sh still running after {timeout:?}; it printed:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        assert!(kill(sig, self.child.id()), "kill {sig} {}", self.child.id());
    }

    /// The pid of the process run.sh started whose command line has `word` as an argument.
    fn child_pid(&self, word: &str) -> u32 {
        let me = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap();
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .map(|c| c.split(|b| *b == 0).any(|a| a == word.as_bytes()))
                    .unwrap_or(false)
            })
            .unwrap_or_else(|| panic!("no child of run.sh with argument {word:?}"))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // TERM, not KILL: the script's cleanup stops the Envoys it started.
            kill("-TERM", self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// Sends `sig` to `pid` with bash's builtin kill (a minimal Debian has no /usr/bin/kill).
fn kill(sig: &str, pid: u32) -> bool {
    Command::new("bash")
        .args(["-c", &format!("kill {sig} {pid}")])
        .status()
        .is_ok_and(|s| s.success())
}

/// A copy of examples/ with `from` replaced by `to` in envoy.yaml (exactly once).
fn examples_with(tag: &str, from: &str, to: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "trace-inject-run-script-{tag}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "envoy.yaml",
        "envoy-sidecar.yaml",
        "envoy-sidecar-otel.yaml",
    ] {
        let text = std::fs::read_to_string(Path::new("examples").join(f)).unwrap();
        let text = if f == "envoy.yaml" {
            assert_eq!(text.matches(from).count(), 1, "examples/{f}: one {from:?}");
            text.replace(from, to)
        } else {
            text
        };
        std::fs::write(dir.join(f), text).unwrap();
    }
    dir
}

/// The log folder (`$TMPDIR/trace-inject-run.XXXXXX`) the script names first in `out`.
fn log_folder(out: &str) -> PathBuf {
    let prefix = format!("{}/trace-inject-run.", std::env::temp_dir().display());
    let at = out
        .find(&prefix)
        .unwrap_or_else(|| panic!("no log folder {prefix}* named in:\n{out}"));
    let suffix: String = out[at + prefix.len()..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    PathBuf::from(format!("{prefix}{suffix}"))
}

fn assert_fails_fast(tag: &str, from: &str, to: &str, expect: &[&str]) {
    let dir = examples_with(tag, from, to);
    let start = Instant::now();
    let mut run = Run::start(Some(&dir));
    let (code, out) = run.wait_exit(Duration::from_secs(60));
    let exited = SystemTime::now();
    let took = start.elapsed();
    assert_eq!(code, 1, "exit status; output:\n{out}");
    for needle in expect {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    // Fast: the report follows Envoy's last log line (written as it exits) within moments, not
    // after the readiness timeout (120 s here). Envoy's own start-up time depends on the load.
    let logs = log_folder(&out);
    let last_log = std::fs::metadata(logs.join("envoy.log"))
        .and_then(|m| m.modified())
        .expect("envoy.log kept after a failure");
    let reaction = exited.duration_since(last_log).unwrap_or_default();
    assert!(
        reaction < Duration::from_secs(3),
        "reported {reaction:?} after Envoy's last log line; output:\n{out}"
    );
    assert!(
        out.contains(&format!("see more: less {}/envoy.log", logs.display())),
        "{out}"
    );
    println!(
        "{tag}: exited {took:?} after the start, {reaction:?} after Envoy's last log line:\n{out}"
    );
    let _ = std::fs::remove_dir_all(&logs);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_typo_in_the_plugin_configuration_names_the_field_within_seconds() {
    assert_fails_fast(
        "badconfig",
        r#"value: '{"tracer": "none"}'"#,
        r#"value: '{"sampling": 5}'"#,
        &[
            "make run: envoy (Envoy, ",
            "exited (status 1): invalid plugin configuration: field `sampling`: unknown field `sampling`",
            "cargo run -q --bin check-config -- FILE.json",
            "make run: stopped everything it started; logs kept in ",
        ],
    );
}

#[test]
fn a_wrong_wasm_path_is_named_with_what_to_do() {
    assert_fails_fast(
        "badpath",
        "filename: dist/trace_inject.wasm",
        "filename: dist/trace-inject.wasm",
        &[
            "exited (status 1): Invalid path: dist/trace-inject.wasm",
            "'make build' writes dist/trace_inject.wasm",
        ],
    );
}

#[test]
fn runs_until_ctrl_c_then_stops_everything_and_removes_its_logs() {
    let mut run = Run::start(None);
    let out = run.wait_for_output("Runs until Ctrl-C", Duration::from_secs(60));
    assert!(
        out.contains(&format!("curl -si localhost:{}/", run.edge_port)),
        "the hint names the port in use:\n{out}"
    );
    let logs = log_folder(&out);
    assert!(logs.is_dir(), "{}", logs.display());
    let r = http::request(run.edge_port, "GET", "/", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("x-trace-id").is_some(), "{r:?}");

    // A second run on the same ports says which port is taken, and leaves no log folder behind
    // (its TMPDIR, where it would make one, stays empty).
    let tmp = std::env::temp_dir().join(format!(
        "trace-inject-run-script-second-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut second = Run::start_on(run.ports, None, Some(&tmp));
    let (code, out2) = second.wait_exit(Duration::from_secs(20));
    assert_eq!(code, 1, "{out2}");
    assert!(
        out2.contains("is in use: stop what listens there (an earlier 'make run'?"),
        "{out2}"
    );
    assert!(!out2.contains("trace-inject-run."), "{out2}");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "a log folder was left in {}",
        tmp.display()
    );
    let _ = std::fs::remove_dir(&tmp);

    run.signal("-INT");
    let (code, out) = run.wait_exit(Duration::from_secs(20));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("stopped (Ctrl-C)"), "{out}");
    assert!(!logs.exists(), "log folder {} left behind", logs.display());
    assert!(
        http::request(run.edge_port, "GET", "/", &[]).is_err(),
        "Envoy still answers after Ctrl-C"
    );
}

#[test]
fn a_process_that_exits_later_stops_the_rest_and_says_which() {
    let mut run = Run::start(None);
    run.wait_for_output("Runs until Ctrl-C", Duration::from_secs(60));
    let echo = run.child_pid("echo");
    assert!(kill("-TERM", echo));
    let (code, out) = run.wait_exit(Duration::from_secs(20));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("make run: echo (echo upstream) exited (status 143)"),
        "{out}"
    );
    assert!(
        http::request(run.edge_port, "GET", "/", &[]).is_err(),
        "Envoy still answers after the echo exited"
    );
    let logs = log_folder(&out[out.find("logs kept in").unwrap()..]);
    assert!(logs.join("echo.log").exists());
    let _ = std::fs::remove_dir_all(&logs);
}

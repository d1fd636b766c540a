//! `check-config`, the command users validate a pluginConfig with before they apply it: exit 0
//! when valid, 1 naming the field, 2 when the file cannot be read or the command line is wrong;
//! `--help` and `-h` print the usage.

use std::io::Write;
use std::process::{Command, Stdio};

fn check(stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_check-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("check-config runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("exit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn valid_refused_and_unreadable() {
    let (code, out, _) = check(r#"{"outputs": ["w3c"], "tracer": "opentelemetry"}"#);
    assert_eq!((code, out.trim()), (0, "plugin configuration is valid"));
    let (code, _, err) = check(r#"{"sampling_percent": 101}"#);
    assert_eq!(code, 1);
    assert!(err.contains("sampling_percent"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_check-config"))
        .arg("/nonexistent/plugin.json")
        .output()
        .expect("check-config runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/plugin.json"));
}

/// Runs check-config with ARGS and no stdin: (exit code, stdout, stderr).
/// Every problem of a configuration on its own line, each naming its field.
#[test]
fn every_problem_on_its_own_line() {
    let (code, _, err) =
        check(r#"{"sampling": 1, "sampling_percent": "all", "outputs": ["b3", "b3"]}"#);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("invalid plugin configuration: field `")),
        "{err}"
    );
    assert!(
        err.contains("field `sampling_percent`: invalid type: string \"all\", expected a number"),
        "{err}"
    );
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_check-config"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("check-config runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_is_usage_not_a_file_name() {
    for flag in ["--help", "-h"] {
        let (code, out, err) = run(&[flag]);
        assert_eq!(code, 0, "{flag}: {err}");
        assert!(
            out.starts_with("usage: check-config [FILE.json]"),
            "{flag}: {out}"
        );
        assert!(out.contains("make check-plugin FILE="), "{flag}: {out}");
        assert!(
            !err.contains("cannot read"),
            "{flag} was read as a file: {err}"
        );
    }
}

#[test]
fn a_wrong_command_line_gets_the_usage_and_status_2() {
    for args in [&["--verbose"][..], &["a.json", "b.json"]] {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("usage: check-config"), "{args:?}: {err}");
        assert!(!err.contains("cannot read"), "{args:?}: {err}");
    }
    // `-` is stdin, as for most Unix tools: here empty stdin, which is the defaults.
    let (code, out, _) = run(&["-"]);
    assert_eq!((code, out.trim()), (0, "plugin configuration is valid"));
}

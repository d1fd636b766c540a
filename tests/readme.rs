//! The README's command lines are real: every `make X` it shows is a Makefile target, every
//! `scripts/…`, `examples/…`, `tests/…` path it names exists, every `--bin NAME` is a binary.

use std::collections::BTreeSet;
use std::path::Path;

/// The rule names of a Makefile (`name:` or `a b:` at the start of a line; not `:=` variables).
fn make_targets(makefile: &str) -> BTreeSet<String> {
    makefile
        .lines()
        .filter(|l| !l.starts_with(['\t', '#', ' ', '.', '$']))
        .filter_map(|l| l.split_once(':'))
        .filter(|(_, rest)| !rest.starts_with('='))
        .flat_map(|(names, _)| names.split_whitespace().map(str::to_string))
        .filter(|n| !n.contains(['=', '?', '+', '(']))
        .collect()
}

/// Lines of fenced code blocks that are commands: every line of a `sh`/`bash` block, the `$ `
/// lines of a `console` block, and any line of either that starts with `make ` (the hints
/// `make run` prints). Inline code spans that start with `make ` count too.
fn command_lines(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    for line in readme.lines() {
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            fence = match fence {
                None => Some(info.trim().to_string()),
                Some(_) => None,
            };
            continue;
        }
        match fence.as_deref() {
            Some("sh" | "bash") => out.push(t.to_string()),
            Some("console") => {
                if let Some(cmd) = t.strip_prefix("$ ") {
                    out.push(cmd.to_string());
                } else if t.starts_with("make ") {
                    out.push(t.to_string());
                }
            }
            Some(_) => {}
            None => {
                // Inline `code` spans: the odd-numbered pieces between backticks.
                for (i, span) in line.split('`').enumerate() {
                    if i % 2 == 1 && span.starts_with("make ") {
                        out.push(span.to_string());
                    }
                }
            }
        }
    }
    out
}

/// The make targets a command line asks for: after each `make` that starts a command (line start,
/// or after `;`, `&&`, `||`, `|`, `(`), the words up to a comment, skipping options and VAR=value.
fn targets_used(line: &str) -> Vec<String> {
    let line = line.split(" #").next().unwrap_or("");
    let mut out = Vec::new();
    for segment in line.split([';', '|', '&', '(']) {
        let mut words = segment.split_whitespace();
        if words.next() != Some("make") {
            continue;
        }
        for w in words {
            if w.starts_with('-') || w.contains('=') {
                continue;
            }
            if !w
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            {
                break;
            }
            out.push(w.to_string());
        }
    }
    out
}

/// Every `scripts/…`, `examples/…` and `tests/…` path named anywhere in the text.
fn repo_paths(readme: &str) -> BTreeSet<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut out = BTreeSet::new();
    for dir in ["scripts/", "examples/", "tests/"] {
        let mut from = 0;
        while let Some(i) = readme[from..].find(dir) {
            let at = from + i;
            from = at + dir.len();
            // Only where a path starts: not inside another path or word (`benches/`, `x/tests/`).
            if readme[..at].chars().next_back().is_some_and(is_path_char) {
                continue;
            }
            let path: String = readme[at..]
                .chars()
                .take_while(|c| is_path_char(*c))
                .collect();
            let path = path.trim_end_matches(['.', '-']);
            if path.len() > dir.len() {
                out.insert(path.to_string());
            }
        }
    }
    out
}

/// Every `--bin NAME` in the command lines.
fn bins_used(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .flat_map(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .filter(|w| w[0] == "--bin")
                .map(|w| w[1].to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What in `readme` is not real in a repository whose Makefile is `makefile` and whose files
/// `exists` says exist.
fn problems(readme: &str, makefile: &str, exists: impl Fn(&str) -> bool) -> Vec<String> {
    let targets = make_targets(makefile);
    let lines = command_lines(readme);
    let mut out = Vec::new();
    for line in &lines {
        for t in targets_used(line) {
            if !targets.contains(&t) {
                out.push(format!("`{line}`: no Makefile target {t:?}"));
            }
        }
    }
    for p in repo_paths(readme) {
        if !exists(&p) {
            out.push(format!("{p}: no such file or directory"));
        }
    }
    for b in bins_used(&lines) {
        if !exists(&format!("src/bin/{b}.rs")) {
            out.push(format!("--bin {b}: no src/bin/{b}.rs"));
        }
    }
    out
}

#[test]
fn every_make_target_path_and_binary_the_readme_shows_exists() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let makefile = std::fs::read_to_string("Makefile").unwrap();
    // It read what it should: the quick start's commands and paths are among them.
    let lines = command_lines(&readme);
    let used: BTreeSet<String> = lines.iter().flat_map(|l| targets_used(l)).collect();
    for t in ["run", "test", "traces", "push"] {
        assert!(
            used.contains(t),
            "README shows no `make {t}`? found {used:?}"
        );
    }
    assert!(repo_paths(&readme).contains("examples/envoy.yaml"));
    assert!(bins_used(&lines).contains("check-config"));

    let problems = problems(&readme, &makefile, |p| Path::new(p).exists());
    assert!(
        problems.is_empty(),
        "README.md shows commands or paths that do not exist:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn a_missing_target_path_or_binary_is_reported() {
    let makefile = "WASM := x\nbuild: $(WASM) ## b\nrun test: build\n\t@make -s build\n";
    assert_eq!(
        make_targets(makefile),
        BTreeSet::from(["build".to_string(), "run".into(), "test".into()])
    );
    let readme = "Try `make buidl`.\n\n```sh\nmake run && make -s tests REGISTRY=x  # comment make nope\n```\n\
                  ```console\n$ cargo run -q --bin check-konfig -- x.json\n  make traces    # hint\n$ ls\n```\n\
                  See scripts/run.sh, examples/gone.yaml. and benches/tests/x.rs\n";
    let exists = |p: &str| p == "scripts/run.sh";
    assert_eq!(
        problems(readme, makefile, exists),
        vec![
            "`make buidl`: no Makefile target \"buidl\"".to_string(),
            "`make run && make -s tests REGISTRY=x  # comment make nope`: no Makefile target \"tests\"".into(),
            "`make traces    # hint`: no Makefile target \"traces\"".into(),
            "examples/gone.yaml: no such file or directory".into(),
            "--bin check-konfig: no src/bin/check-konfig.rs".into(),
        ]
    );
}

//! README.md and docs/*.md say only what is real: every `make X` they show is a Makefile target,
//! every repository path they name exists, every `--bin NAME` is a binary, every relative link
//! and anchor resolves, every local port is one `make run` opens (or one the same page sets up),
//! the README's port table matches `scripts/run.sh` and the examples, the size it shows is the
//! built module's, and no page reads like a lab notebook (issues, branches, sessions).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// The repository's top-level folders whose paths the pages name.
const REPO_DIRS: [&str; 7] = [
    "scripts/",
    "examples/",
    "tests/",
    "src/",
    "docs/",
    "tools/",
    "bench/",
];

/// Every path into one of `REPO_DIRS` named anywhere in the text.
fn repo_paths(text: &str) -> BTreeSet<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut out = BTreeSet::new();
    for dir in REPO_DIRS {
        let mut from = 0;
        while let Some(i) = text[from..].find(dir) {
            let at = from + i;
            from = at + dir.len();
            // Only where a path starts: not inside another path or word (`benches/`, `x/tests/`).
            if text[..at].chars().next_back().is_some_and(is_path_char) {
                continue;
            }
            let path: String = text[at..]
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

/// The text outside fenced code blocks, with inline code spans blanked: where links live.
fn prose(md: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if !fenced {
            for (i, piece) in line.split('`').enumerate() {
                if i % 2 == 0 {
                    out.push_str(piece);
                } else {
                    out.push_str(&" ".repeat(piece.len() + 2));
                }
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of the markdown links `[text](target)` in `md` (text may span lines).
fn link_targets(md: &str) -> Vec<String> {
    let text = prose(md);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("](") {
        let at = from + i + 2;
        from = at;
        let target: String = text[at..]
            .chars()
            .take_while(|c| *c != ')' && !c.is_whitespace())
            .collect();
        if text[at + target.len()..].starts_with(')') && !target.is_empty() {
            out.push(target);
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown file's headings, duplicates numbered as GitHub numbers them.
fn anchors(md: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(h) = line.strip_prefix('#') else {
            continue;
        };
        if fenced {
            continue;
        }
        let h = h.trim_start_matches('#');
        if !h.starts_with(' ') {
            continue;
        }
        let s = slug(h);
        let n = seen.entry(s.clone()).or_insert(0);
        out.insert(if *n == 0 {
            s.clone()
        } else {
            format!("{s}-{n}")
        });
        *n += 1;
    }
    out
}

/// A relative link from the page at `page` that does not resolve: missing file or anchor.
fn broken_links(page: &Path, md: &str, read: &dyn Fn(&Path) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    for target in link_targets(md) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((f, a)) => (f, Some(a)),
            None => (target.as_str(), None),
        };
        let path = if file.is_empty() {
            page.to_path_buf()
        } else {
            normalize(&page.parent().unwrap_or(Path::new("")).join(file))
        };
        let Some(text) = read(&path) else {
            out.push(format!("{}: link {target}: no such file", page.display()));
            continue;
        };
        if let Some(a) = anchor {
            if !anchors(&text).contains(a) {
                out.push(format!(
                    "{}: link {target}: no heading #{a} in {}",
                    page.display(),
                    path.display()
                ));
            }
        }
    }
    out
}

/// `a/b/../c` → `a/c` (links from docs/ into the root).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The default ports of `scripts/run.sh` (its `[DEFAULT]="${RUN_X_PORT:-DEFAULT}"` lines),
/// by variable.
fn run_ports(run_sh: &str) -> BTreeMap<String, u16> {
    run_sh
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix('[')?;
            let (port, rest) = rest.split_once("]=\"${")?;
            let (var, rest) = rest.split_once(":-")?;
            let default = rest.split('}').next()?;
            (port == default && var.starts_with("RUN_"))
                .then(|| Some((var.to_string(), port.parse().ok()?)))?
        })
        .collect()
}

/// Every `localhost:N` and `127.0.0.1:N` in the text.
fn local_ports(text: &str) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    for host in ["localhost:", "127.0.0.1:"] {
        for (i, _) in text.match_indices(host) {
            let digits: String = text[i + host.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(p) = digits.parse() {
                out.insert(p);
            }
        }
    }
    out
}

/// Whether the page itself sets `port` up: an Envoy config of its own (`port_value: N`), a
/// `kubectl port-forward` naming it, or `istioctl dashboard jaeger` for Jaeger's 16686.
fn set_up_on_page(text: &str, port: u16) -> bool {
    text.contains(&format!("port_value: {port}"))
        || text
            .lines()
            .any(|l| l.contains("port-forward") && l.contains(&port.to_string()))
        || (port == 16686 && text.contains("istioctl dashboard jaeger"))
}

/// Every `RUN_…PORT` variable named in the text.
fn run_port_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("RUN_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if name.ends_with("_PORT") {
            out.insert(name);
        }
    }
    out
}

/// The rows of the README's "What listens where" table: (ports of the first column, the
/// `examples/…` file of the last).
fn port_table(readme: &str) -> Vec<(Vec<u16>, Option<String>)> {
    let Some(start) = readme.find("| port | what | config |") else {
        return Vec::new();
    };
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let ports = cells
                .get(1)
                .unwrap_or(&"")
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|d| d.parse().ok())
                .collect();
            let config = cells
                .iter()
                .rev()
                .find(|c| c.contains("examples/"))
                .map(|c| c.trim_matches('`').to_string());
            (ports, config)
        })
        .collect()
}

/// Words that belong to how the project is run, not to what it does.
fn notebook_words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for (i, _) in lower.match_indices("issue ") {
        let digits: String = lower[i + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if !digits.is_empty() {
            out.push(format!("issue {digits}"));
        }
    }
    for w in [
        "the lead",
        "session",
        "this branch",
        "branch `",
        "on this branch",
    ] {
        if lower.contains(w) {
            out.push(w.to_string());
        }
    }
    out
}

/// What in one page is not real in a repository whose Makefile is `makefile` and whose files
/// `exists` says exist.
fn problems(page: &str, text: &str, makefile: &str, exists: impl Fn(&str) -> bool) -> Vec<String> {
    let targets = make_targets(makefile);
    let lines = command_lines(text);
    let mut out = Vec::new();
    for line in &lines {
        for t in targets_used(line) {
            if !targets.contains(&t) {
                out.push(format!("{page}: `{line}`: no Makefile target {t:?}"));
            }
        }
    }
    for p in repo_paths(text) {
        if !exists(&p) {
            out.push(format!("{page}: {p}: no such file or directory"));
        }
    }
    for b in bins_used(&lines) {
        if !exists(&format!("src/bin/{b}.rs")) {
            out.push(format!("{page}: --bin {b}: no src/bin/{b}.rs"));
        }
    }
    out
}

fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// README.md and every docs/*.md, as (path, text).
fn pages() -> Vec<(String, String)> {
    let mut docs: Vec<String> = std::fs::read_dir("docs")
        .expect("docs/")
        .filter_map(|e| e.ok())
        .map(|e| format!("docs/{}", e.file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".md"))
        .collect();
    docs.sort();
    std::iter::once("README.md".to_string())
        .chain(docs)
        .map(|p| {
            let t = read(&p);
            (p, t)
        })
        .collect()
}

#[test]
fn every_make_target_path_and_binary_the_pages_show_exists() {
    let readme = read("README.md");
    let makefile = read("Makefile");
    // It read what it should: the quick start's commands and paths are among them.
    let lines = command_lines(&readme);
    let used: BTreeSet<String> = lines.iter().flat_map(|l| targets_used(l)).collect();
    for t in ["run", "test", "traces", "push", "image", "check-plugin"] {
        assert!(
            used.contains(t),
            "README shows no `make {t}`? found {used:?}"
        );
    }
    assert!(repo_paths(&readme).contains("examples/envoy.yaml"));
    assert!(bins_used(&lines).contains("check-config"));

    let mut all = Vec::new();
    for (page, text) in pages() {
        all.extend(problems(&page, &text, &makefile, |p| Path::new(p).exists()));
    }
    assert!(
        all.is_empty(),
        "README.md or docs/ show commands or paths that do not exist:\n  {}",
        all.join("\n  ")
    );
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let pages = pages();
    let readme_links = link_targets(&pages[0].1);
    assert!(
        readme_links.iter().any(|l| l == "docs/deploy-istio.md"),
        "the README links its docs: {readme_links:?}"
    );
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let broken: Vec<String> = pages
        .iter()
        .flat_map(|(page, text)| broken_links(Path::new(page), text, &read))
        .collect();
    assert!(
        broken.is_empty(),
        "broken links:\n  {}",
        broken.join("\n  ")
    );
    // Every docs page is reachable from the README.
    for (page, _) in &pages[1..] {
        assert!(
            readme_links.iter().any(|l| l == page),
            "README.md does not link {page}"
        );
    }
}

#[test]
fn every_port_the_pages_show_is_one_make_run_opens_or_the_page_sets_up() {
    let run_sh = read("scripts/run.sh");
    let ports = run_ports(&run_sh);
    assert_eq!(ports.len(), 8, "run.sh's port map changed shape: {ports:?}");
    let defaults: BTreeSet<u16> = ports.values().copied().collect();
    let readme = read("README.md");

    // The README's table is run.sh's ports, each in the example it names.
    let table = port_table(&readme);
    let shown: BTreeSet<u16> = table.iter().flat_map(|(p, _)| p.clone()).collect();
    assert_eq!(shown, defaults, "README's port table vs scripts/run.sh");
    for (row_ports, config) in &table {
        if let Some(config) = config {
            let yaml = read(config);
            for p in row_ports {
                assert!(
                    yaml.contains(&format!("port_value: {p}")),
                    "README says :{p} is {config}, which has no port_value: {p}"
                );
            }
        }
    }
    // Every override run.sh takes is named in the README, and no other.
    let vars: BTreeSet<String> = ports.keys().cloned().collect();
    assert_eq!(
        run_port_vars(&readme),
        vars,
        "README's RUN_*_PORT list vs run.sh"
    );

    let mut stray = Vec::new();
    for (page, text) in pages() {
        for p in local_ports(&text) {
            if !defaults.contains(&p) && !set_up_on_page(&text, p) {
                stray.push(format!("{page}: localhost:{p}"));
            }
        }
        for v in run_port_vars(&text) {
            if !vars.contains(&v) {
                stray.push(format!("{page}: {v} (not in scripts/run.sh)"));
            }
        }
    }
    assert!(
        stray.is_empty(),
        "ports nothing opens:\n  {}",
        stray.join("\n  ")
    );
}

#[test]
fn the_size_the_readme_shows_is_the_built_modules() {
    let readme = read("README.md");
    let Ok(meta) = std::fs::metadata("dist/trace_inject.wasm") else {
        eprintln!("dist/trace_inject.wasm not built: size not checked (make build)");
        return;
    };
    let size = meta.len() as f64;
    let mut shown = Vec::new();
    for (i, _) in readme.match_indices(" bytes of Wasm") {
        let digits: String = readme[..i]
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect();
        shown.push(
            digits
                .chars()
                .rev()
                .collect::<String>()
                .parse::<f64>()
                .unwrap(),
        );
    }
    for (i, _) in readme.match_indices(" KiB)") {
        let digits: String = readme[..i]
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(kib) = digits.chars().rev().collect::<String>().parse::<f64>() {
            shown.push(kib * 1024.0);
        }
    }
    assert!(!shown.is_empty(), "the README shows no module size");
    for s in shown {
        assert!(
            (s - size).abs() / size <= 0.05,
            "README shows {s} bytes; dist/trace_inject.wasm has {size} (more than 5 % apart)"
        );
    }
}

#[test]
fn no_page_reads_like_a_lab_notebook() {
    let found: Vec<String> = pages()
        .iter()
        .flat_map(|(page, text)| {
            notebook_words(text)
                .into_iter()
                .map(move |w| format!("{page}: {w:?}"))
        })
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn a_missing_target_path_binary_link_or_port_is_reported() {
    let makefile = "WASM := x\nbuild: $(WASM) ## b\nrun test: build\n\t@make -s build\n";
    assert_eq!(
        make_targets(makefile),
        BTreeSet::from(["build".to_string(), "run".into(), "test".into()])
    );
    let readme = "Try `make buidl`.\n\n```sh\nmake run && make -s tests REGISTRY=x  # comment make nope\n```\n\
                  ```console\n$ cargo run -q --bin check-konfig -- x.json\n  make traces    # hint\n$ ls\n```\n\
                  See scripts/run.sh, examples/gone.yaml. and benches/tests/x.rs, docs/gone.md\n";
    let exists = |p: &str| p == "scripts/run.sh";
    assert_eq!(
        problems("R", readme, makefile, exists),
        vec![
            "R: `make buidl`: no Makefile target \"buidl\"".to_string(),
            "R: `make run && make -s tests REGISTRY=x  # comment make nope`: no Makefile target \"tests\"".into(),
            "R: `make traces    # hint`: no Makefile target \"traces\"".into(),
            "R: docs/gone.md: no such file or directory".into(),
            "R: examples/gone.yaml: no such file or directory".into(),
            "R: --bin check-konfig: no src/bin/check-konfig.rs".into(),
        ]
    );

    // Links: a missing file, a missing anchor, a good one across a line break, code ignored.
    let page =
        "# Top\n## 2. The span tags\nSee [a](other.md), [b](#top), [c\nd](#2-the-span-tags), \
                [e](#nope), [f](../README.md#x), [g](https://x/y#z). `[h](gone.md)`\n\
                ```\n[i](gone2.md)\n```\n";
    let read = |p: &Path| (p == Path::new("README.md")).then(|| "# X\n".to_string());
    assert_eq!(
        broken_links(Path::new("docs/p.md"), page, &read),
        vec![
            "docs/p.md: link other.md: no such file".to_string(),
            "docs/p.md: link #top: no such file".into(),
            "docs/p.md: link #2-the-span-tags: no such file".into(),
            "docs/p.md: link #nope: no such file".into(),
        ]
    );
    let read_self = |p: &Path| (p == Path::new("docs/p.md")).then(|| page.to_string());
    assert_eq!(
        broken_links(Path::new("docs/p.md"), page, &read_self),
        vec![
            "docs/p.md: link other.md: no such file".to_string(),
            "docs/p.md: link #nope: no heading #nope in docs/p.md".into(),
            "docs/p.md: link ../README.md#x: no such file".into(),
        ]
    );
    assert_eq!(
        slug("`trust_incoming`: who may choose"),
        "trust_incoming-who-may-choose"
    );
    assert_eq!(
        slug("The filter's own spans (`export`)"),
        "the-filters-own-spans-export"
    );
    assert_eq!(
        anchors("# A\n## A\n```\n# B\n```\n"),
        BTreeSet::from(["a".to_string(), "a-1".into()])
    );

    // Ports: run.sh's map, a stray one, one a page forwards itself.
    let run_sh = "declare -A PORT=(\n  [8080]=\"${RUN_ECHO_PORT:-8080}\"\n  [9411]=\"${RUN_COLLECTOR_PORT:-9411}\"\n)\n";
    assert_eq!(
        run_ports(run_sh),
        BTreeMap::from([
            ("RUN_COLLECTOR_PORT".to_string(), 9411),
            ("RUN_ECHO_PORT".into(), 8080)
        ])
    );
    let text =
        "curl localhost:8080/ and 127.0.0.1:4318\nkubectl port-forward x 15020\nlocalhost:15020";
    assert_eq!(local_ports(text), BTreeSet::from([8080, 4318, 15020]));
    assert!(set_up_on_page(text, 15020) && !set_up_on_page(text, 4318));
    assert_eq!(
        notebook_words("As issue 13 said, on this branch"),
        vec![
            "issue 13".to_string(),
            "this branch".into(),
            "on this branch".into()
        ]
    );
}

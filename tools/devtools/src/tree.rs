//! Renders traces as indented trees for the terminal: what a user reads instead of opening
//! Jaeger.
//!
//! ```text
//! trace 463ac35c9f6413ad · 2 spans · 12.301 ms · 2023-11-14 22:13:20.000 UTC · front, back
//! front  ingress  12.301 ms  SERVER  span 00000000000000a1
//! │   component=proxy  http.method=GET  http.status_code=200
//! └── back  egress  2.000 ms  CLIENT  span 00000000000000b2  ERROR
//!         error=true  upstream_cluster=back
//! ```

use crate::term::escape;
use crate::zipkin::Span;
use std::collections::{BTreeSet, HashMap};

/// Tags are packed into lines up to this many characters (after the tree's indentation).
const TAG_LINE_WIDTH: usize = 100;

/// Levels of nesting shown; the spans below are counted on one line. Real traces are a few
/// dozen levels deep; a broken or hostile collector can send a parent chain as long as the
/// trace, which shown whole would be 100,000 lines indented by up to 400,000 characters each.
const MAX_DEPTH: usize = 64;

/// Terminal styles; all empty when colour is off.
struct Style {
    bold: &'static str,
    service: &'static str,
    dim: &'static str,
    duration: &'static str,
    error: &'static str,
    reset: &'static str,
}

const PLAIN: Style = Style {
    bold: "",
    service: "",
    dim: "",
    duration: "",
    error: "",
    reset: "",
};

const ANSI: Style = Style {
    bold: "\x1b[1m",
    service: "\x1b[1;36m",
    dim: "\x1b[2m",
    duration: "\x1b[33m",
    error: "\x1b[1;31m",
    reset: "\x1b[0m",
};

/// Renders several traces, separated by blank lines, in the order given.
pub fn render_traces(traces: &[Vec<Span>], color: bool) -> String {
    traces
        .iter()
        .map(|t| render_trace(t, color))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders one trace: a header line, then one line per span as a tree by `parentId`, each
/// span's tags (sorted, `key=value`, several to a line) and annotations on the indented lines
/// below it. Every string of a span is printed through [`escape`]: the spans are whoever
/// posted them.
pub fn render_trace(spans: &[Span], color: bool) -> String {
    let st = if color { &ANSI } else { &PLAIN };
    let mut out = String::new();
    if spans.is_empty() {
        return out;
    }
    let start = spans.iter().filter_map(|s| s.timestamp).min();
    let end = spans
        .iter()
        // Saturating: timestamp and duration are whatever the poster wrote, up to 2^64 - 1.
        .filter_map(|s| Some(s.timestamp?.saturating_add(s.duration.unwrap_or(0))))
        .max();
    let mut services: Vec<&str> = Vec::new();
    for s in spans {
        if let Some(n) = s.service_name() {
            if !services.contains(&n) {
                services.push(n);
            }
        }
    }
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    let mut header = vec![
        format!(
            "{}trace {}{}",
            st.bold,
            escape(&ids.into_iter().collect::<Vec<_>>().join("+")),
            st.reset
        ),
        format!(
            "{} span{}",
            spans.len(),
            if spans.len() == 1 { "" } else { "s" }
        ),
    ];
    if let (Some(s), Some(e)) = (start, end) {
        header.push(ms(e - s));
        header.push(format_timestamp(s));
    }
    if !services.is_empty() {
        header.push(escape(&services.join(", ")).into_owned());
    }
    out += &header.join(" · ");
    out.push('\n');

    let tree = Tree::new(spans);
    let mut seen = vec![false; spans.len()];
    for root in tree.roots() {
        tree.render(root, st, &mut seen, &mut out);
    }
    // Whatever a parent cycle kept unreachable still gets shown.
    for i in 0..spans.len() {
        if !seen[i] {
            tree.render(i, st, &mut seen, &mut out);
        }
    }
    out
}

struct Tree<'a> {
    spans: &'a [Span],
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
}

impl<'a> Tree<'a> {
    fn new(spans: &'a [Span]) -> Tree<'a> {
        // Spans may share an id: a client span and the next hop's server span (`shared: true`),
        // as Zipkin's tracers do, and Envoy (shared_span_context, the default) even gives every
        // proxy hop's SERVER span the id of the hop before. Spans of one id are therefore
        // chained in start order (client before shared at equal times): each hop under the one
        // that called it, as Zipkin's UI hangs a shared span under its client. Children of that
        // id hang under the last of the chain, the hop that made their calls.
        let mut same_id: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, s) in spans.iter().enumerate() {
            same_id.entry(&s.id).or_default().push(i);
        }
        let mut parent: Vec<Option<usize>> = vec![None; spans.len()];
        let mut by_id: HashMap<&str, usize> = HashMap::new();
        for (id, mut group) in same_id {
            group.sort_by_key(|i| {
                let s = &spans[*i];
                (s.timestamp.unwrap_or(0), s.shared == Some(true), *i)
            });
            for w in group.windows(2) {
                parent[w[1]] = Some(w[0]);
            }
            by_id.insert(id, *group.last().expect("groups are not empty"));
        }
        for (i, s) in spans.iter().enumerate() {
            if parent[i].is_none() {
                parent[i] = s
                    .parent_id
                    .as_deref()
                    .and_then(|p| by_id.get(p).copied())
                    .filter(|p| *p != i);
            }
        }
        let mut children = vec![Vec::new(); spans.len()];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(i);
            }
        }
        for c in &mut children {
            c.sort_by_key(|i| (spans[*i].timestamp.unwrap_or(0), *i));
        }
        Tree {
            spans,
            parent,
            children,
        }
    }

    fn roots(&self) -> Vec<usize> {
        let mut r: Vec<usize> = (0..self.spans.len())
            .filter(|i| self.parent[*i].is_none())
            .collect();
        r.sort_by_key(|i| (self.spans[*i].timestamp.unwrap_or(0), *i));
        r
    }

    /// Renders the spans under `root` not yet `seen`, depth first, with a stack of its own: a
    /// parent chain can be as long as the trace. Below [`MAX_DEPTH`] levels, spans are counted.
    fn render(&self, root: usize, st: &Style, seen: &mut [bool], out: &mut String) {
        // (span, prefix of its own line, prefix of everything below it, depth)
        let mut stack = vec![(root, String::new(), String::new(), 0)];
        while let Some((i, first, rest, depth)) = stack.pop() {
            if seen[i] {
                continue;
            }
            seen[i] = true;
            self.render_span(i, &first, &rest, st, out);
            let unseen: Vec<usize> = self.children[i]
                .iter()
                .copied()
                .filter(|k| !seen[*k])
                .collect();
            if unseen.is_empty() {
                continue;
            }
            if depth + 1 == MAX_DEPTH {
                let hidden = self.hide_below(i, seen);
                out.push_str(&format!(
                    "{rest}└── {}… {hidden} more span{} nested deeper than {MAX_DEPTH} levels, \
                     not shown{}\n",
                    st.dim,
                    if hidden == 1 { "" } else { "s" },
                    st.reset
                ));
                continue;
            }
            // Pushed last to first: the first child is rendered next.
            for (n, k) in unseen.iter().enumerate().rev() {
                let (f, r) = if n + 1 == unseen.len() {
                    ("└── ", "    ")
                } else {
                    ("├── ", "│   ")
                };
                stack.push((*k, format!("{rest}{f}"), format!("{rest}{r}"), depth + 1));
            }
        }
    }

    /// Marks every span under `i` not yet seen as seen; returns how many there were.
    fn hide_below(&self, i: usize, seen: &mut [bool]) -> usize {
        let mut hidden = 0;
        let mut stack = vec![i];
        while let Some(p) = stack.pop() {
            for k in &self.children[p] {
                if !seen[*k] {
                    seen[*k] = true;
                    hidden += 1;
                    stack.push(*k);
                }
            }
        }
        hidden
    }

    /// One span: its line (`first` before it) and its tags and annotations (`rest` before them).
    fn render_span(&self, i: usize, first: &str, rest: &str, st: &Style, out: &mut String) {
        let s = &self.spans[i];
        // Every string of a span is the poster's: escaped before it reaches the terminal.
        let mut line = format!(
            "{first}{}{}{}  {}  {}{}{}",
            st.service,
            escape(s.service_name().unwrap_or("?")),
            st.reset,
            escape(s.name.as_deref().unwrap_or("?")),
            st.duration,
            s.duration.map_or("? ms".to_string(), ms),
            st.reset,
        );
        if let Some(k) = &s.kind {
            line += &format!("  {}", escape(k));
        }
        if let Some(r) = s.remote_service_name() {
            line += &format!("  -> {}", escape(r));
        }
        line += &format!("  {}span {}{}", st.dim, escape(&s.id), st.reset);
        if self.parent[i].is_none() {
            if let Some(p) = &s.parent_id {
                line += &format!(
                    "  {}(parent {} not received){}",
                    st.dim,
                    escape(p),
                    st.reset
                );
            }
        }
        if s.tag("error").is_some() {
            line += &format!("  {}ERROR{}", st.error, st.reset);
        }
        out.push_str(&line);
        out.push('\n');

        let kids = &self.children[i];
        let detail = format!("{rest}{}", if kids.is_empty() { "    " } else { "│   " });
        // Tags packed into lines of about TAG_LINE_WIDTH: Envoy puts ~17 on every span, and one
        // per line would bury the tree's shape.
        let mut line = String::new();
        let mut width = 0;
        for (k, v) in &s.tags {
            let (k, v) = (escape(k), escape(v));
            let w = k.chars().count() + 1 + v.chars().count();
            if width > 0 && width + 2 + w > TAG_LINE_WIDTH {
                out.push_str(&format!("{detail}{line}\n"));
                (line, width) = (String::new(), 0);
            }
            if width > 0 {
                line += "  ";
                width += 2;
            }
            line += &format!("{}{k}={}{v}", st.dim, st.reset);
            width += w;
        }
        if width > 0 {
            out.push_str(&format!("{detail}{line}\n"));
        }
        for a in &s.annotations {
            let at = match s.timestamp {
                Some(t) if a.timestamp >= t => format!("+{}", ms(a.timestamp - t)),
                _ => format_timestamp(a.timestamp),
            };
            out.push_str(&format!(
                "{detail}{}@{at}{} {}\n",
                st.dim,
                st.reset,
                escape(&a.value)
            ));
        }
    }
}

/// Microseconds as milliseconds, e.g. `12.301 ms`.
fn ms(us: u64) -> String {
    format!("{}.{:03} ms", us / 1000, us % 1000)
}

/// Epoch microseconds as `YYYY-MM-DD HH:MM:SS.mmm UTC`.
pub fn format_timestamp(us: u64) -> String {
    let secs = us / 1_000_000;
    let (days, sod) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        us % 1_000_000 / 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zipkin::{Annotation, Endpoint};

    fn span(id: &str, parent: Option<&str>, svc: &str, name: &str, ts: u64, dur: u64) -> Span {
        Span {
            trace_id: "463ac35c9f6413ad".into(),
            id: id.into(),
            parent_id: parent.map(Into::into),
            name: Some(name.into()),
            timestamp: Some(ts),
            duration: Some(dur),
            local_endpoint: Some(Endpoint {
                service_name: Some(svc.into()),
                ..Endpoint::default()
            }),
            ..Span::default()
        }
    }

    const T0: u64 = 1_700_000_000_000_000;

    #[test]
    fn renders_a_tree_with_tags() {
        let mut root = span("a1", None, "front", "ingress", T0, 12_301);
        root.kind = Some("SERVER".into());
        root.tags.insert("http.method".into(), "GET".into());
        root.tags.insert("component".into(), "proxy".into());
        let mut c1 = span(
            "b2",
            Some("a1"),
            "front",
            "router echo egress",
            T0 + 100,
            11_002,
        );
        c1.tags.insert("upstream_cluster".into(), "echo".into());
        let mut c1a = span("c3", Some("b2"), "back", "ingress", T0 + 200, 2_000);
        c1a.tags.insert("error".into(), "true".into());
        c1a.annotations.push(Annotation {
            timestamp: T0 + 1200,
            value: "retry".into(),
        });
        let mut c2 = span("d4", Some("a1"), "front", "log", T0 + 12_000, 1);
        // 100 characters of tags at most per line: a long one gets a line of its own.
        c2.tags.insert("a".into(), "1".into());
        c2.tags.insert("b".into(), "x".repeat(95));
        c2.tags.insert("c".into(), "multi\nline".into());
        // Given out of order: the tree orders children by timestamp.
        let text = render_trace(&[c2, c1a, root, c1], false);
        let want = "\
trace 463ac35c9f6413ad · 4 spans · 12.301 ms · 2023-11-14 22:13:20.000 UTC · front, back
front  ingress  12.301 ms  SERVER  span a1
│   component=proxy  http.method=GET
├── front  router echo egress  11.002 ms  span b2
│   │   upstream_cluster=echo
│   └── back  ingress  2.000 ms  span c3  ERROR
│           error=true
│           @+1.000 ms retry
└── front  log  0.001 ms  span d4
        a=1
        b=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
        c=multi\\nline
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn orphans_shared_spans_and_cycles() {
        let orphan = span("e5", Some("ff"), "back", "late", T0 + 5, 10);
        let client = Span {
            kind: Some("CLIENT".into()),
            ..span("b2", Some("a1"), "front", "egress", T0, 100)
        };
        let server = Span {
            kind: Some("SERVER".into()),
            shared: Some(true),
            ..span("b2", Some("a1"), "back", "ingress", T0 + 1, 90)
        };
        let inner = span("c3", Some("b2"), "back", "db", T0 + 2, 5);
        let loop1 = span("x1", Some("x2"), "z", "l1", T0 + 9, 1);
        let loop2 = span("x2", Some("x1"), "z", "l2", T0 + 9, 1);
        let text = render_trace(&[orphan, client, server, inner, loop1, loop2], false);
        let want = "\
trace 463ac35c9f6413ad · 6 spans · 0.100 ms · 2023-11-14 22:13:20.000 UTC · back, front, z
front  egress  0.100 ms  CLIENT  span b2  (parent a1 not received)
└── back  ingress  0.090 ms  SERVER  span b2
    └── back  db  0.005 ms  span c3
back  late  0.010 ms  span e5  (parent ff not received)
z  l1  0.001 ms  span x1
└── z  l2  0.001 ms  span x2
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn envoy_hops_sharing_one_span_id_are_chained() {
        // Two Envoys in a row, as Envoy 1.40 reports them: both SERVER, shared, one id.
        let hop = |svc: &str, ts: u64, dur: u64| Span {
            kind: Some("SERVER".into()),
            shared: Some(true),
            ..span("2b9d8bdb9efb1e3b", None, svc, "localhost:18000", ts, dur)
        };
        let back = hop("backend", T0 + 1_000, 799);
        let front = hop("front", T0, 2_191);
        let db = span(
            "00000000000000c3",
            Some("2b9d8bdb9efb1e3b"),
            "backend",
            "db",
            T0 + 1_100,
            50,
        );
        let text = render_trace(&[back, db, front], false);
        let want = "\
trace 463ac35c9f6413ad · 3 spans · 2.191 ms · 2023-11-14 22:13:20.000 UTC · backend, front
front  localhost:18000  2.191 ms  SERVER  span 2b9d8bdb9efb1e3b
└── backend  localhost:18000  0.799 ms  SERVER  span 2b9d8bdb9efb1e3b
    └── backend  db  0.050 ms  span 00000000000000c3
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn colour_and_missing_fields() {
        let bare = Span {
            trace_id: "1".into(),
            id: "2".into(),
            ..Span::default()
        };
        assert_eq!(
            render_trace(std::slice::from_ref(&bare), false),
            "trace 1 · 1 span\n?  ?  ? ms  span 2\n"
        );
        let coloured = render_trace(&[bare], true);
        assert!(coloured.contains("\x1b[1;36m?\x1b[0m"), "{coloured:?}");
        assert_eq!(render_traces(&[], false), "");
    }

    #[test]
    fn strings_from_the_collector_are_escaped() {
        let esc = "\x1b]0;owned\x07\x1b[2J";
        let mut s = span("a1\x1b[1A", Some("ff\u{202e}"), esc, "name\u{9b}31m", T0, 5);
        s.trace_id = "463a\x1b[K".into();
        s.kind = Some("SERVER\x1b[8m".into());
        s.remote_endpoint = Some(Endpoint {
            service_name: Some("db\u{2066}".into()),
            ..Endpoint::default()
        });
        s.tags
            .insert("k\x1b[31m".into(), "v\u{202e}txt.exe\r\x7f".into());
        s.annotations.push(Annotation {
            timestamp: T0 + 1,
            value: "a\u{85}\x00".into(),
        });
        let text = render_trace(&[s], false);
        let want = "\
trace 463a\\u{1b}[K · 1 span · 0.005 ms · 2023-11-14 22:13:20.000 UTC · \\u{1b}]0;owned\\u{7}\\u{1b}[2J
\\u{1b}]0;owned\\u{7}\\u{1b}[2J  name\\u{9b}31m  0.005 ms  SERVER\\u{1b}[8m  -> db\\u{2066}  span a1\\u{1b}[1A  (parent ff\\u{202e} not received)
    k\\u{1b}[31m=v\\u{202e}txt.exe\\r\\u{7f}
    @+0.001 ms a\\u{85}\\u{0}
";
        assert_eq!(text, want, "\n{text}");
        // In colour, the only escapes are the viewer's own.
        let coloured = render_trace(&[span("b2", None, "svc\x1b[0m", "n", T0, 1)], true);
        assert!(!coloured.contains("\x1b[0m\x1b[0m"), "{coloured:?}");
        assert!(coloured.contains("svc\\u{1b}[0m"), "{coloured:?}");
    }

    /// `n` spans, each the parent of the next: span `i` has id `i + 1`, in hex.
    fn chain(n: usize) -> Vec<Span> {
        (0..n)
            .map(|i| {
                let parent = (i > 0).then(|| format!("{i:016x}"));
                span(
                    &format!("{:016x}", i + 1),
                    parent.as_deref(),
                    "s",
                    "n",
                    T0,
                    1,
                )
            })
            .collect()
    }

    #[test]
    fn a_100k_deep_parent_chain_is_shown_to_a_bounded_depth() {
        let text = render_trace(&chain(100_000), false);
        let lines: Vec<&str> = text.lines().collect();
        // The header, MAX_DEPTH spans, then one line for the rest.
        assert_eq!(lines.len(), 1 + MAX_DEPTH + 1, "{}", &text[..2000]);
        let indent = (MAX_DEPTH - 1) * 4;
        assert!(lines[MAX_DEPTH].starts_with(&format!("{}└── s  n", " ".repeat(indent - 4))));
        assert_eq!(
            lines[MAX_DEPTH + 1],
            format!(
                "{}└── … {} more spans nested deeper than {MAX_DEPTH} levels, not shown",
                " ".repeat(indent),
                100_000 - MAX_DEPTH
            )
        );
    }

    #[test]
    fn a_100k_span_cycle_and_50k_small_ones_are_each_shown_once() {
        // The chain with its first span's parent the last: no root, one cycle.
        let mut spans = chain(100_000);
        spans[0].parent_id = Some(format!("{:016x}", 100_000));
        let text = render_trace(&spans, false);
        assert!(text.ends_with(&format!(
            "{} more spans nested deeper than 64 levels, not shown\n",
            100_000 - MAX_DEPTH
        )));
        assert_eq!(text.lines().count(), 1 + MAX_DEPTH + 1);
        // 50,000 two-span cycles: 100,000 lines, each span once.
        let spans: Vec<Span> = (0..100_000u64)
            .map(|i| {
                let (id, parent) = (format!("{:016x}", i + 1), format!("{:016x}", (i ^ 1) + 1));
                span(&id, Some(&parent), "s", "n", T0, 1)
            })
            .collect();
        let text = render_trace(&spans, false);
        assert_eq!(text.lines().count(), 1 + 100_000);
    }

    #[test]
    fn times_near_the_end_of_u64_do_not_overflow() {
        let late = span("a1", None, "s", "n", u64::MAX - 1, u64::MAX);
        let text = render_trace(&[late], false);
        assert!(
            text.starts_with("trace 463ac35c9f6413ad · 1 span · 0.001 ms · "),
            "{text}"
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(
            format_timestamp(951_782_400_123_456),
            "2000-02-29 00:00:00.123 UTC"
        );
        assert_eq!(
            format_timestamp(1_798_761_599_999_999),
            "2026-12-31 23:59:59.999 UTC"
        );
    }
}

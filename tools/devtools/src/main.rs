//! `trace-inject-devtools`: the echo upstream, the trace collector (Zipkin v2 and OTLP/HTTP) and the trace viewer as
//! commands, for `make run` and `make traces`.

use std::io::IsTerminal;
use std::process::ExitCode;
use trace_inject_devtools::{http, term, tree, zipkin, Collector, EchoServer, Span};

const USAGE: &str = "\
usage: trace-inject-devtools <command> [options]

commands:
  echo [--port N] [-q]        echo upstream on 127.0.0.1:N (default 8080): answers 200 with
                              {\"method\",\"path\",\"headers\":[[name,value],...]};
                              /status/NNN answers status NNN
  collector [--port N] [--otlp-port M] [-q]
                              trace collector on 127.0.0.1:N (default 9411), in memory:
                              POST /api/v2/spans (Zipkin v2 JSON), POST /v1/traces (OTLP/HTTP,
                              protobuf or JSON), GET /api/v2/services, /api/v2/traces,
                              /api/v2/trace/{id}; --otlp-port M serves the same on M too
                              (e.g. 4318, OTLP/HTTP's usual port)
  traces [--collector URL] [--limit N] [--service NAME] [--id TRACEID] [--no-color]
                              print traces from a Zipkin API (default http://127.0.0.1:9411,
                              10 newest traces) as trees, newest last
  help                        this text

-q: do not log each request on stderr. NO_COLOR (or output not a terminal) disables colour.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("echo") => serve_echo(&args[1..]),
        Some("collector") => serve_collector(&args[1..]),
        Some("traces") => traces(&args[1..]),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trace-inject-devtools: {}", e.trim_end());
            ExitCode::FAILURE
        }
    }
}

/// Options as `--name value`, `--name=value` or bare flags; `known` lists which take a value.
struct Opts {
    values: Vec<(String, String)>,
    flags: Vec<String>,
}

impl Opts {
    fn parse(args: &[String], with_value: &[&str], flags: &[&str]) -> Result<Opts, String> {
        let mut o = Opts {
            values: Vec::new(),
            flags: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            if with_value.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| format!("{name} needs a value"))?
                        .clone(),
                };
                o.values.push((name.to_string(), v));
            } else if flags.contains(&name) && inline.is_none() {
                o.flags.push(name.to_string());
            } else {
                return Err(format!("unexpected argument {a:?}\n\n{USAGE}"));
            }
        }
        Ok(o)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{name}: not a number: {v:?}")),
        }
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

fn serve_echo(args: &[String]) -> Result<(), String> {
    let o = Opts::parse(args, &["--port"], &["-q", "--quiet"])?;
    let port: u16 = o.number("--port", 8080)?;
    let echo = EchoServer::bind(&format!("127.0.0.1:{port}"))
        .map_err(|e| format!("echo: bind 127.0.0.1:{port}: {e}"))?;
    echo.set_logging(!(o.flag("-q") || o.flag("--quiet")));
    eprintln!(
        "echo upstream listening on http://127.0.0.1:{}",
        echo.port()
    );
    echo.wait();
    Ok(())
}

fn serve_collector(args: &[String]) -> Result<(), String> {
    let o = Opts::parse(args, &["--port", "--otlp-port"], &["-q", "--quiet"])?;
    let port: u16 = o.number("--port", 9411)?;
    let mut c = Collector::bind(&format!("127.0.0.1:{port}"))
        .map_err(|e| format!("collector: bind 127.0.0.1:{port}: {e}"))?;
    c.set_logging(!(o.flag("-q") || o.flag("--quiet")));
    eprintln!(
        "trace collector listening on http://127.0.0.1:{} (Zipkin v2: POST /api/v2/spans; \
         OTLP/HTTP: POST /v1/traces)",
        c.port()
    );
    let otlp_port: u16 = o.number("--otlp-port", 0)?;
    if otlp_port != 0 {
        let p = c
            .listen_also(&format!("127.0.0.1:{otlp_port}"))
            .map_err(|e| format!("collector: bind 127.0.0.1:{otlp_port}: {e}"))?;
        eprintln!("  and on http://127.0.0.1:{p} (the same API and store)");
    }
    c.wait();
    Ok(())
}

fn traces(args: &[String]) -> Result<(), String> {
    let o = Opts::parse(
        args,
        &["--collector", "--limit", "--id", "--service"],
        &["--no-color"],
    )?;
    let base = o
        .get("--collector")
        .unwrap_or("http://127.0.0.1:9411")
        .trim_end_matches('/');
    let limit: usize = o.number("--limit", 10)?;
    let color = !o.flag("--no-color")
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    let fetch = |path: &str| -> Result<Option<serde_json::Value>, String> {
        let url = format!("{base}{path}");
        let r = http::get_url(&url)
            .map_err(|e| format!("{e}\n(is the collector running? `make run` starts one)"))?;
        match r.status {
            200 => serde_json::from_slice(&r.body)
                .map(Some)
                .map_err(|e| format!("GET {url}: not JSON: {e}")),
            404 => Ok(None),
            // The collector's words, maybe a remote one's: escaped like the spans.
            s => Err(format!("GET {url}: {s} {}", term::escape(r.text().trim()))),
        }
    };
    let decode = |v: serde_json::Value| -> Result<Vec<Span>, String> {
        serde_json::from_value(v)
            .map_err(|e| format!("unexpected span JSON: {}", term::escape(&e.to_string())))
    };

    let mut traces: Vec<Vec<Span>> = Vec::new();
    if let Some(id) = o.get("--id") {
        let id = zipkin::normalize_trace_id_lenient(id).map_err(|e| format!("--id: {e}"))?;
        match fetch(&format!("/api/v2/trace/{id}"))? {
            Some(v) => traces.push(decode(v)?),
            None => return Err(format!("trace {id} not found at {base}")),
        }
    } else {
        let mut path = format!("/api/v2/traces?limit={limit}");
        if let Some(s) = o.get("--service") {
            path += &format!("&serviceName={}", encode(s));
        }
        let v = fetch(&path)?.ok_or_else(|| format!("{base}/api/v2/traces: 404"))?;
        let serde_json::Value::Array(list) = v else {
            return Err(format!("{base}/api/v2/traces: not a JSON array"));
        };
        for t in list {
            traces.push(decode(t)?);
        }
        // The API gives newest first; newest last leaves it next to the prompt.
        traces.reverse();
    }
    if traces.is_empty() {
        print!("{}", no_traces_hint(base));
        return Ok(());
    }
    print!("{}", tree::render_traces(&traces, color));
    if o.get("--id").is_none() {
        let n = traces.len();
        println!(
            "\n{n} trace{} from {base}, newest last",
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// What `make traces` says when the collector holds nothing: when spans come, and where a failed
/// export shows (a wrong cluster name, a collector that refuses them) so that it is not silent.
fn no_traces_hint(base: &str) -> String {
    format!(
        "no traces at {base} yet. Envoy's tracers post spans about every 5 s, the filter's own \
         (\"export\") every second, and only once a request has shown that no tracer runs on \
         its hop (from the first request with \"tracer\": \"none\").\n\
         If none arrive, ask the Envoy that should send them (make run: admin :9901 edge, :9902 and \
         :9903 sidecars):\n  \
         curl -s localhost:9901/stats | grep -E 'spans_failed|reports_failed'\n\
         (the filter counts its failed posts in wasmcustom.trace_inject.export.spans_failed, \
         Envoy's Zipkin tracer in tracing.zipkin.reports_failed),\n\
         and look for the filter's `span export` warning, which names the cluster and the reason, \
         in that Envoy's log (envoy*.log in the folder make run printed).\n"
    )
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_no_traces_hint_points_at_the_counter_and_the_log() {
        let hint = super::no_traces_hint("http://127.0.0.1:9411");
        assert!(hint.starts_with("no traces at http://127.0.0.1:9411 yet."));
        assert!(hint.contains("trace_inject.export.spans_failed"), "{hint}");
        assert!(hint.contains("`span export` warning"), "{hint}");
        assert!(hint.contains("localhost:9901/stats"), "{hint}");
    }
}

//! `check-config [FILE]`: validates a plugin configuration (JSON, from FILE or stdin) with the
//! same parser the filter runs in `on_configure`. Exit 0 when valid, 1 with the reason when not,
//! 2 when the input cannot be read or the command line is wrong. `--help`/`-h` print the usage.

use std::io::Read;
use std::process::ExitCode;

const USAGE: &str = "\
usage: check-config [FILE.json]
       check-config --help

Checks a trace-inject plugin configuration with the filter's own parser: the JSON of a
WasmPlugin's pluginConfig, or the `configuration` value of an Envoy config. Reads FILE, or
stdin when FILE is absent or `-`.

Exit status: 0 valid; 1 refused (the message names the field); 2 unreadable input or a wrong
command line.

To check a whole WasmPlugin manifest (Istio's schema too): make check-plugin FILE=my-plugin.yaml
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Help,
    /// Check FILE, or stdin for `None`.
    Check(Option<std::ffi::OsString>),
    /// A command line that is neither: the reason.
    Wrong(String),
}

fn command(args: &[std::ffi::OsString]) -> Command {
    match args {
        [] => Command::Check(None),
        [one] if one == "-h" || one == "--help" => Command::Help,
        [one] if one == "-" => Command::Check(None),
        [one] if one.to_string_lossy().starts_with('-') => {
            Command::Wrong(format!("unknown option {}", one.to_string_lossy()))
        }
        [one] => Command::Check(Some(one.clone())),
        _ => Command::Wrong("one FILE at most".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let path = match command(&args) {
        Command::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Wrong(why) => {
            eprintln!("check-config: {why}");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
        Command::Check(path) => path,
    };
    let mut raw = Vec::new();
    let read = match &path {
        Some(path) => std::fs::read(path).map(|b| raw = b),
        None => std::io::stdin().read_to_end(&mut raw).map(|_| ()),
    };
    if let Err(e) = read {
        // Name what could not be read: "No such file or directory" alone does not say which.
        let what = path.map_or("stdin".into(), |p| p.to_string_lossy().into_owned());
        eprintln!("check-config: cannot read {what}: {e}");
        eprintln!("usage: check-config [FILE.json]   (check-config --help says more)");
        return ExitCode::from(2);
    }
    match trace_inject::config::Config::parse(&raw) {
        Ok(_) => {
            println!("plugin configuration is valid");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line per problem (Envoy's log gets them all on one).
            for problem in e.problems() {
                eprintln!("invalid plugin configuration: {problem}");
            }
            ExitCode::from(1)
        }
    }
}

//! `check-config [FILE]`: validates a plugin configuration (JSON, from FILE or stdin) with the
//! same parser the filter runs in `on_configure`. Exit 0 when valid, 1 with the reason when not.

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut raw = Vec::new();
    let path = std::env::args_os().nth(1);
    let read = match &path {
        Some(path) => std::fs::read(path).map(|b| raw = b),
        None => std::io::stdin().read_to_end(&mut raw).map(|_| ()),
    };
    if let Err(e) = read {
        // Name what could not be read: "No such file or directory" alone does not say which.
        let what = path.map_or("stdin".into(), |p| p.to_string_lossy().into_owned());
        eprintln!("check-config: cannot read {what}: {e}");
        eprintln!(
            "usage: check-config [FILE.json]   (the plugin configuration as JSON; no FILE: stdin)"
        );
        return ExitCode::from(2);
    }
    match trace_inject::config::Config::parse(&raw) {
        Ok(_) => {
            println!("plugin configuration is valid");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

//! Issue "Fast and unbreakable", fail-safe: what a user sees when the plugin configuration is
//! invalid, or the module does not load, under each failure policy (README "When it fails").

mod common;
use common::*;

#[test]
fn static_config_with_a_bad_plugin_config_or_module_refuses_to_start_under_either_policy() {
    wasm_built();
    let dir = std::env::temp_dir().join(format!("trace-inject-failsafe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = dir.join("corrupt.wasm");
    let good = std::fs::read(WASM).unwrap();
    std::fs::write(&corrupt, &good[..1000]).unwrap();
    for policy in ["FAIL_OPEN", "FAIL_CLOSED"] {
        let echo = EchoServer::start();
        let policy_line = format!("failure_policy: {policy}");
        // An invalid plugin configuration: on_configure refuses it, naming the field.
        let err = match builder(
            "envoy.yaml",
            10000,
            8080,
            free_port(),
            echo.port(),
            // Wrong type: stays invalid when `outputs: []` becomes valid (issue 13).
            r#"{"outputs": "b3"}"#,
        )
        .replace("failure_policy: FAIL_OPEN", policy_line.clone())
        .start()
        {
            Ok(_) => panic!("{policy}: Envoy started with an invalid plugin configuration"),
            Err(e) => e,
        };
        assert!(
            err.contains("invalid plugin configuration: field `outputs`"),
            "{policy}: {err}"
        );
        assert!(
            err.contains("Unable to create Wasm plugin trace-inject"),
            "{policy}: {err}"
        );
        // A module that does not load.
        let err = match builder("envoy.yaml", 10000, 8080, free_port(), echo.port(), "{}")
            .replace("failure_policy: FAIL_OPEN", policy_line)
            .replace(
                "filename: dist/trace_inject.wasm",
                format!("filename: {}", corrupt.display()),
            )
            .start()
        {
            Ok(_) => panic!("{policy}: Envoy started with a corrupt module"),
            Err(e) => e,
        };
        assert!(err.contains("Failed to load Wasm code"), "{policy}: {err}");
        assert!(
            err.contains("Unable to create Wasm plugin trace-inject"),
            "{policy}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bad plugin configuration pushed to a running Envoy (a listener update, as istiod sends
/// one) is refused and counted in `trace_inject.config_rejected`; the listener Envoy had keeps
/// serving, filtered.
#[test]
fn a_bad_config_pushed_at_runtime_is_counted_and_the_old_listener_serves() {
    wasm_built();
    let echo = EchoServer::start();
    let dir = std::env::temp_dir().join(format!("trace-inject-lds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string("examples/envoy.yaml")
        .unwrap()
        .replace(
            "port_value: 8080}",
            &format!("port_value: {}}}", echo.port()),
        )
        .replace("port_value: 9901}", "port_value: 0}")
        .replace("port_value: 10000}", "port_value: 0}");
    // The listener moves from static_resources to an LDS file Envoy watches.
    let (head, rest) = text
        .split_once("  listeners:\n")
        .expect("a listeners section");
    let (listener, clusters) = rest
        .split_once("  clusters:\n")
        .expect("a clusters section");
    let listener = listener.replacen(
        "  - name: ingress\n",
        "  - \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n    name: ingress\n",
        1,
    );
    let lds = dir.join("lds.yaml");
    let write_lds = |body: &str| {
        let tmp = dir.join("lds.yaml.tmp");
        std::fs::write(&tmp, format!("resources:\n{body}")).unwrap();
        std::fs::rename(&tmp, &lds).unwrap();
    };
    write_lds(&listener);
    let bootstrap = dir.join("bootstrap.yaml");
    std::fs::write(
        &bootstrap,
        format!(
            "{head}  clusters:\n{clusters}\ndynamic_resources:\n  lds_config:\n    resource_api_version: V3\n    path_config_source: {{path: {}}}\n",
            lds.display()
        ),
    )
    .unwrap();
    let envoy = Envoy::builder(&bootstrap)
        .extra_args(["--service-cluster", "edge", "--service-node", "edge-1"])
        .start()
        .unwrap_or_else(|e| panic!("Envoy: {e}"));
    // LDS listeners come up after /ready may already say so: wait for the port.
    assert!(
        wait_until(std::time::Duration::from_secs(10), || !envoy
            .listener_ports()
            .is_empty()),
        "the LDS listener"
    );
    let port = envoy.port();
    let r = http::request(port, "GET", "/", &[]).unwrap();
    assert!(r.header("x-trace-id").is_some());
    assert_eq!(
        envoy
            .stat("wasmcustom.trace_inject.config_rejected")
            .unwrap_or(0),
        0
    );
    // The update: the same listener with an invalid plugin configuration.
    let invalid = listener.replace(
        &plugin_config_line("envoy.yaml"),
        r#"value: '{"outputs": "b3"}'"#,
    );
    assert_ne!(invalid, listener, "the plugin configuration replaced");
    write_lds(&invalid);
    assert_stat(&envoy, "listener_manager.lds.update_rejected", 1);
    assert_stat(&envoy, "wasmcustom.trace_inject.config_rejected", 1);
    let r = http::request(port, "GET", "/", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.header("x-trace-id").is_some(),
        "the old listener still filters"
    );
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
}

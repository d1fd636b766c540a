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

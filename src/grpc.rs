//! gRPC over HTTP/2: which requests are gRPC calls, what the path names, and which status codes
//! mean that the server failed (the OpenTelemetry RPC semantic conventions for server spans).

/// The request's `content-type` says gRPC (`application/grpc`, `+proto`, `+json`, ...).
pub fn is_grpc(content_type: &[u8]) -> bool {
    content_type
        .get(..16)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"application/grpc"))
        && matches!(content_type.get(16), None | Some(b'+' | b';'))
}

/// `/package.Service/Method` → (`package.Service`, `Method`).
pub fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// A status code that marks a server span as failed (OpenTelemetry's RPC conventions: UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS); the others say the
/// call was refused or failed by the client's doing.
pub fn is_server_error(code: u32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// The code's name, as gRPC writes it.
pub fn code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        for ct in [
            &b"application/grpc"[..],
            b"application/grpc+proto",
            b"application/grpc+json",
            b"Application/GRPC",
            b"application/grpc;charset=utf-8",
        ] {
            assert!(is_grpc(ct), "{ct:?}");
        }
        for ct in [
            &b"application/json"[..],
            b"application/grpc-web",
            b"application/grp",
            b"",
        ] {
            assert!(!is_grpc(ct), "{ct:?}");
        }
    }

    #[test]
    fn paths_name_service_and_method() {
        assert_eq!(
            service_and_method("/helloworld.Greeter/SayHello"),
            Some(("helloworld.Greeter", "SayHello"))
        );
        for p in ["/", "//x", "/svc/", "svc/m", "/a/b/c", ""] {
            assert_eq!(service_and_method(p), None, "{p}");
        }
    }

    #[test]
    fn server_errors_are_the_conventions_six() {
        let errors: Vec<u32> = (0..=16).filter(|c| is_server_error(*c)).collect();
        assert_eq!(errors, vec![2, 4, 12, 13, 14, 15]);
        assert_eq!(code_name(5), "NOT_FOUND");
        assert_eq!(code_name(99), "UNKNOWN_CODE");
    }
}

"""A real gRPC client (grpcio, gRPC's C core) for tests/grpc.rs: calls made through Envoy, and
everything the client got back, as a gRPC application sees it.

stdin, one JSON object:
  {"calls": [{"target": "127.0.0.1:PORT",
              "path": "/trace.inject.test.Echo/Unary",
              "kind": "unary" | "stream",          (server streaming)
              "metadata": [[name, value], ...],    (optional; names lower case)
              "timeout": seconds,                  (optional: the call's deadline)
              "request": "text"}, ...]}            (optional)
stdout, one JSON object:
  {"calls": [{"path": ..., "code": 0..16, "code_name": "OK", "details": str or null,
              "initial_metadata": [[name, value], ...], "trailing_metadata": [[name, value], ...],
              "responses": ["text", ...]}, ...]}

The calls run one after another, one channel (one HTTP/2 connection) per target. A call's
failure is its result, not the script's: the script fails only on a bad plan.
Run with the interpreter of .tools/grpc-venv (scripts/install-grpc.sh).
"""

import json
import sys

import grpc


def pairs(metadata):
    return [[k, v.hex() if isinstance(v, bytes) else v] for k, v in (metadata or ())]


def run(channel, call):
    path = call["path"]
    metadata = [tuple(p) for p in call.get("metadata", [])]
    timeout = call.get("timeout")
    request = call.get("request", "").encode()
    responses = []
    if call.get("kind", "unary") == "unary":
        try:
            response, rpc = channel.unary_unary(path).with_call(
                request, metadata=metadata, timeout=timeout
            )
            responses.append(response)
        except grpc.RpcError as e:
            # The error is the call: it holds the status and both metadata.
            rpc = e
    else:
        rpc = channel.unary_stream(path)(request, metadata=metadata, timeout=timeout)
        try:
            for response in rpc:
                responses.append(response)
        except grpc.RpcError:
            pass
    code = rpc.code()
    return {
        "path": path,
        "code": code.value[0],
        "code_name": code.name,
        "details": rpc.details(),
        "initial_metadata": pairs(rpc.initial_metadata()),
        "trailing_metadata": pairs(rpc.trailing_metadata()),
        "responses": [r.decode("utf-8", "replace") for r in responses],
    }


def main():
    plan = json.load(sys.stdin)
    channels = {}
    results = []
    for call in plan["calls"]:
        target = call["target"]
        if target not in channels:
            # grpc honours http_proxy from the environment: never for a test's loopback Envoy.
            channels[target] = grpc.insecure_channel(
                target, options=[("grpc.enable_http_proxy", 0)]
            )
        results.append(run(channels[target], call))
    for ch in channels.values():
        ch.close()
    json.dump({"calls": results}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

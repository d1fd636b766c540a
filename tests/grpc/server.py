"""A real gRPC server (grpcio, gRPC's C core) for tests/grpc.rs: the upstream behind Envoy.

Service `trace.inject.test.Echo`, generic handlers on raw bytes (no .proto, no codegen; the wire
is gRPC all the same: HTTP/2, `content-type: application/grpc`, length-prefixed messages, the
status in `grpc-status`):

  Unary             unary: answers one message, the JSON of what it received
  Stream            server streaming: three messages, the first the JSON of what it received
  NotFound          fails NOT_FOUND before sending anything: a trailers-only response
  InternalAfterData server streaming: one message, then fails INTERNAL (status in the trailers)
  Slow              sleeps until the client gives up (its deadline) or 10 s pass, then answers
  Fail              ends with the status the request names ("NOT_FOUND", "DATA_LOSS", ...; "OK"
                    answers an empty message), trailers-only

Any other method is answered by grpc itself: UNIMPLEMENTED, trailers-only (a last handler only
writes down what such a call received, and declines it).

stdout, one JSON object a line: first {"port": N} (bound on 127.0.0.1, a port the kernel picks),
then one {"method": "/trace.inject.test.Echo/NAME", "metadata": [[name, value], ...]} per call
it received, written before it answers: what reached the server, failed calls included.
Binary (`-bin`) values are written as hex. Runs until killed.
Run with the interpreter of .tools/grpc-venv (scripts/install-grpc.sh).
"""

import json
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "trace.inject.test.Echo"
_out = threading.Lock()


def emit(record):
    with _out:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def record(path, invocation_metadata):
    """Writes a call's metadata on stdout and returns it as a dict."""
    metadata = [[k, v.hex() if isinstance(v, bytes) else v] for k, v in invocation_metadata]
    call = {"method": path, "metadata": metadata}
    emit(call)
    return call


def received(method, context):
    return record(f"/{SERVICE}/{method}", context.invocation_metadata())


class Unknown(grpc.GenericRpcHandler):
    """Asked last: a method no handler serves. Writes it down and declines it, so that grpc answers
    UNIMPLEMENTED itself."""

    def service(self, handler_call_details):
        record(handler_call_details.method, handler_call_details.invocation_metadata)
        return None


def reply(record, request, **more):
    return json.dumps(dict(record, request=request.decode("utf-8", "replace"), **more)).encode()


def unary(request, context):
    return reply(received("Unary", context), request)


def stream(request, context):
    record = received("Stream", context)
    for n in range(3):
        yield reply(record, request, n=n) if n == 0 else json.dumps({"n": n}).encode()


def not_found(request, context):
    received("NotFound", context)
    # Nothing sent yet: grpc answers with one HEADERS frame that ends the stream (trailers-only).
    context.abort(grpc.StatusCode.NOT_FOUND, "no such order")


def internal_after_data(request, context):
    record = received("InternalAfterData", context)
    yield reply(record, request, n=0)
    # Headers and a message have gone: the status travels in the trailers.
    context.abort(grpc.StatusCode.INTERNAL, "broke after the first message")


def slow(request, context):
    record = received("Slow", context)
    end = time.monotonic() + 10
    while context.is_active() and time.monotonic() < end:
        time.sleep(0.02)
    return reply(record, request)


def fail(request, context):
    received("Fail", context)
    code = grpc.StatusCode[request.decode()]
    if code == grpc.StatusCode.OK:
        return b""
    context.abort(code, f"failed with {code.name} as asked")


HANDLERS = {
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
    "Stream": grpc.unary_stream_rpc_method_handler(stream),
    "NotFound": grpc.unary_unary_rpc_method_handler(not_found),
    "InternalAfterData": grpc.unary_stream_rpc_method_handler(internal_after_data),
    "Slow": grpc.unary_unary_rpc_method_handler(slow),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
}


def main():
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        # Another test's server must never share the port.
        options=[("grpc.so_reuseport", 0)],
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, HANDLERS), Unknown())
    )
    port = server.add_insecure_port("127.0.0.1:0")
    if port == 0:
        sys.exit("could not bind 127.0.0.1:0")
    server.start()
    emit({"port": port})
    server.wait_for_termination()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A minimal OTLP/HTTP (protobuf) trace receiver for the stack test: it accepts what the sqlrft
containers export (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf) and appends one JSON line per span
to OUT: {"service", "name", "trace_id", "span_id", "parent_span_id"} (ids in hex).

usage: otlp_receiver.py OUT.jsonl PORT_FILE   (listens on 0.0.0.0, a free port written to PORT_FILE)
needs: pip install opentelemetry-proto
"""
import http.server
import json
import pathlib
import sys
import threading

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def main() -> int:
    out, port_file = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            if self.path != "/v1/traces":
                self.send_error(404, "only /v1/traces is received here")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = trace_service_pb2.ExportTraceServiceRequest()
            try:
                request.ParseFromString(body)
            except Exception as error:  # a malformed export is the exporter's bug: say so
                self.send_error(400, f"not an ExportTraceServiceRequest: {error}")
                return
            lines = []
            for resource_spans in request.resource_spans:
                service = next(
                    (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"),
                    "",
                )
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        lines.append(json.dumps({
                            "service": service,
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                        }))
            with lock, out.open("a") as sink:
                sink.writelines(line + "\n" for line in lines)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):  # quiet: the test prints what matters
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    partial = port_file.with_suffix(".partial")
    partial.write_text(str(server.server_address[1]))
    partial.rename(port_file)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

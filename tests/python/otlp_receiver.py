"""A real OTLP/gRPC logs receiver: opentelemetry-proto's LogsService served by grpcio.

    otlp_receiver.py --port PORT --out FILE

Appends one JSON line per log record received to FILE (its modelwatch.seq,
modelwatch.instance and modelwatch.kind attributes, and the body's length), flushed
before the Export call returns, so a record in the file was acknowledged. Prints
"listening" once serving; runs until killed.
"""

import argparse
import json
import sys
import threading
from concurrent import futures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

    lock = threading.Lock()
    out = open(args.out, "a", encoding="utf-8")

    def attribute(record, key):
        for kv in record.attributes:
            if kv.key == key:
                which = kv.value.WhichOneof("value")
                return getattr(kv.value, which) if which else None
        return None

    class Receiver(logs_service_pb2_grpc.LogsServiceServicer):
        def Export(self, request, context):
            lines = []
            for resource_logs in request.resource_logs:
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        lines.append(json.dumps({
                            "seq": attribute(record, "modelwatch.seq"),
                            "instance": attribute(record, "modelwatch.instance"),
                            "kind": attribute(record, "modelwatch.kind"),
                            "severity": record.severity_text,
                            "body_bytes": len(record.body.string_value),
                        }))
            with lock:
                for line in lines:
                    out.write(line + "\n")
                out.flush()
            return logs_service_pb2.ExportLogsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Receiver(), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print("listening", flush=True)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())

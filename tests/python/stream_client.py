"""A third-party client of modelwatch, as a SOC would write it: Python stubs generated
from the proto with grpcio-tools, a stock grpcio channel with no options.

    stream_client.py --stubs DIR --target unix:///run/modelwatch/modelwatch.sock \
        --since 1 [--until-seq N] [--max-events N] [--idle-seconds S] [--kind KIND...]

Prints one JSON object per event received: seq, instance, kind, pid, the event's time
and when it was received (ns since the epoch). Exits 0 after --max-events, after
--until-seq was received, or after --idle-seconds without an event; 3 if the stream
broke, printing the status on stderr.
"""

import argparse
import json
import queue
import sys
import threading
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stubs", required=True, help="directory with the generated *_pb2 modules")
    parser.add_argument("--target", required=True)
    parser.add_argument("--since", type=int, default=0)
    parser.add_argument("--until-seq", type=int, default=0)
    parser.add_argument("--max-events", type=int, default=0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--kind", action="append", default=[])
    parser.add_argument("--status", action="store_true", help="call GetStatus and print it instead")
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)

    import grpc
    from modelwatch.v1 import events_pb2, sensor_pb2, sensor_pb2_grpc

    channel = grpc.insecure_channel(args.target)
    stub = sensor_pb2_grpc.SensorStub(channel)
    if args.status:
        status = stub.GetStatus(sensor_pb2.GetStatusRequest(), timeout=10).status
        print(json.dumps({
            "version": status.version,
            "instance": status.instance,
            "log_first_seq": status.log_first_seq,
            "log_last_seq": status.log_last_seq,
            "log_bytes": status.log_bytes,
            "log_segments": status.log_segments,
            "previous_instance": status.previous_instance,
            "outlets": [{"kind": o.kind, "next_seq": o.next_seq, "state": o.state} for o in status.outlets],
        }))
        return 0
    kinds = [events_pb2.EventKind.Value("EVENT_KIND_" + k.upper()) for k in args.kind]
    request = sensor_pb2.StreamEventsRequest(
        since_seq=args.since, filter=sensor_pb2.EventFilter(kinds=kinds))
    stream = stub.StreamEvents(request)

    # Reading in a thread, so that an idle stream can be left after --idle-seconds.
    received: "queue.Queue" = queue.Queue()

    def pump():
        try:
            for event in stream:
                received.put((time.time_ns(), event))
            received.put(None)
        except grpc.RpcError as error:
            received.put(error)

    threading.Thread(target=pump, daemon=True).start()
    count = 0
    while True:
        try:
            item = received.get(timeout=args.idle_seconds)
        except queue.Empty:
            break
        if item is None:
            break
        if isinstance(item, grpc.RpcError):
            if item.code() == grpc.StatusCode.CANCELLED:
                break
            print(f"stream broke: {item.code()} {item.details()}", file=sys.stderr)
            return 3
        now, event = item
        kind = event.WhichOneof("payload")
        line = {
            "seq": event.seq,
            "instance": event.instance,
            "kind": kind,
            "pid": event.process.pid if event.HasField("process") else 0,
            "time_ns": event.time.seconds * 1_000_000_000 + event.time.nanos,
            "received_ns": now,
        }
        if kind == "events_lost":
            lost = event.events_lost
            line["lost"] = {"source": events_pb2.LossSource.Name(lost.source), "count": lost.count,
                            "first_seq": lost.first_seq, "last_seq": lost.last_seq}
        if kind in ("model_file_opened", "model_file_mapped"):
            line["path"] = getattr(event, kind).file.path
        if kind == "listener_opened":
            line["port"] = event.listener_opened.port
            line["snapshot"] = event.listener_opened.snapshot
        print(json.dumps(line), flush=True)
        count += 1
        if args.max_events and count >= args.max_events:
            break
        if args.until_seq and event.seq >= args.until_seq:
            break
    stream.cancel()
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

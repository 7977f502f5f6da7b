#!/usr/bin/env python3
"""Where the gateway's CPU goes, by phase of a record's way, from a perf profile.

Record the gateway under load with DWARF call graphs (frame pointers are off), then:

    perf record -F 499 --call-graph dwarf,16384 -p <gateway pid> -o gw.perf -- sleep 5
    perf script -i gw.perf -F comm,ip,sym > gw.script
    python3 deploy/perf_phases.py gw.script

Each sample is put in the first phase of PHASES that any frame of its stack names (the
pipeline before the enqueue it calls, and so on), or in its thread's name (librdkafka's broker
and delivery-report threads). Within a phase, DETAIL names the innermost frame that matches.
The "allocator leaf" share is the samples whose own frame is malloc/free (mimalloc or glibc).
See docs/benchmarks.md, "Issue 19, closing".
"""

import collections
import re
import sys

PHASES = [
    # A record's own work first: these frames run inside the transport's (a stream's batch is
    # handled while its response body is polled), so the transport phases come last.
    ("pipeline (adapter, standard, envelope)", r"Pipeline::prepare_for_bus|Pipeline::run"),
    ("enqueue into librdkafka", r"KafkaPublisher as hutong_bus::publisher::Publisher>::publish$|KafkaPublisher::enqueue"),
    ("dedupe window", r"Dedupe|quick_cache"),
    ("audit", r"hutong_gateway::audit|Auditor"),
    ("answers and receipts", r"ingest::delivery::record_result|Delivery::record|spool_in_order|IngestService.*count"),
    ("publish futures (await, receipt)", r"publisher::Publisher>::publish::\{\{closure|publish::\{closure"),
    ("a batch's futures (join, poll)", r"try_join_all|FuturesUnordered|FuturesOrdered|TryMaybeDone"),
    ("gRPC request decode", r"tonic::codec::decode|Streaming<|ProstDecoder|prost::Message>::(decode|merge)"),
    ("gRPC response encode", r"tonic::codec::encode|EncodeBody|ProstEncoder|prost::Message>::encode"),
    ("TLS", r"rustls|(?<![A-Za-z_])ring::|ring_core_|aws_lc"),
    ("HTTP/2", r"(?<![a-z0-9])h2::|hyper::"),
]
DETAIL = [
    ("adapter", r"hutong_adapter::adapter|hutong_adapter::transform|hutong_adapter::expr|pseudonym"),
    ("payload decode", r"decode_payload"),
    ("standard check", r"Entity::check|violations_of"),
    ("serialise", r"serde_json::ser|to_writer"),
    ("envelope, ids, digest", r"CloudEvent|event_id|fact_key|content_digest"),
    ("partitioner", r"EntityPartitioner as rdkafka::producer::Partitioner>::partition|rd_kafka_msg_partitioner"),
    ("headers", r"header"),
    ("message copy", r"rd_kafka_producev|rd_kafka_msg_new"),
]
ALLOC = re.compile(r"(^|_)mi_|__libc_|^_int_|^(malloc|free|cfree|realloc|calloc|malloc_consolidate|unlink_chunk)\b")


def main(path: str) -> None:
    phases = [(n, re.compile(p)) for n, p in PHASES]
    details = [(n, re.compile(p)) for n, p in DETAIL]
    counts: collections.Counter = collections.Counter()
    total = 0
    comm = ""
    frames: list[str] = []

    def flush() -> None:
        nonlocal total
        if not frames:
            return
        total += 1
        phase = next((n for n, p in phases if any(p.search(f) for f in frames)), None)
        if phase is None:
            phase = "other worker time" if comm.startswith("tokio") else f"thread {comm.split()[0]}"
        detail = next((n for f in frames for n, p in details if p.search(f)), "")
        counts[(phase, "*")] += 1
        if detail:
            counts[(phase, detail)] += 1
        if ALLOC.search(frames[0]):
            counts[(phase, "~alloc")] += 1

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                flush()
                frames = []
            elif not line.startswith("\t"):
                comm, frames = line.strip(), []
            else:
                parts = line.strip().split(None, 1)
                if len(parts) == 2:
                    frames.append(parts[1])
    flush()
    if total == 0:
        sys.exit("no samples: was the profile recorded with --call-graph dwarf, and perf script run with -F comm,ip,sym?")
    print(f"{total} samples")
    for phase in sorted({p for p, _ in counts}, key=lambda p: -counts[(p, "*")]):
        share = 100 * counts[(phase, "*")] / total
        print(f"{share:5.1f} %  {phase}  (allocator leaf {100 * counts[(phase, '~alloc')] / total:.1f} %)")
        for (p, d), n in counts.most_common():
            if p == phase and d not in ("*", "~alloc") and n / total >= 0.004:
                print(f"          {100 * n / total:5.1f} %  {d}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

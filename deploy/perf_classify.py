#!/usr/bin/env python3
"""Classify a `perf script` dump of the gateway by part (pipeline, producer, gRPC, kernel ...).

Usage (docs/benchmarks.md):
  perf record -e cpu-clock -F 1999 --call-graph dwarf,32768 -p <gateway pid> -o perf.data -- sleep 5
  perf script -i perf.data > perf.txt
  deploy/perf_classify.py perf.txt [gateway CPU us per record, from hutong bench]

Each sample goes to the category of its leaf-most frame that names one.
"""
import collections
import sys

cats = [
 ("producer: librdkafka threads", ["rd_kafka_broker_thread_main","rd_kafka_thread_main","rd_kafka_background"]),
 ("pipeline: payload decode (UTF-8 + JSON parse)", ["decode_payload"]),
 ("pipeline: standard validation (jsonschema)", ["Entity::validate","hutong_standard::standard::Entity::validate","jsonschema::"]),
 ("pipeline: privacy (mask/pseudonymise)", ["TopicPolicy::apply","tagged_pseudonym"]),
 ("pipeline: adapter", ["Adapter::map"]),
 ("pipeline: serialise message value", ["serde_json::ser::","serialize_entry","format_escaped_str"]),
 ("pipeline: envelope + rest", ["Pipeline::prepare","pipeline::Pipeline::map"]),
 ("producer: enqueue (publish)", ["KafkaPublisher as hutong_bus::publisher::Publisher>::publish","rd_kafka_producev","FutureProducer"]),
 ("audit", ["audited_batch","Auditor::record","hutong_audit"]),
 ("dedupe (quick_cache)", ["quick_cache::","dedupe_key"]),
 ("TLS (rustls)", ["rustls::","ring_core"]),
 ("gRPC: protobuf decode/encode", ["prost::","ProstDecoder","ProstEncoder","tonic_prost"]),
 ("gRPC: HTTP/2 (h2, hyper, tonic)", ["h2::","hyper::","tonic::"]),
 ("kernel (syscalls, network, page faults)", ["kernel.kallsyms"]),
 ("delivery bookkeeping (futures, receipts, answers)", ["Delivery::record","hutong_gateway::ingest"]),
 ("async runtime (tokio scheduling)", ["tokio::runtime"]),
]
counts = collections.Counter(); total = 0
stack = []
def flush():
    global total
    if not stack: return
    total += 1
    for frame in stack:  # leaf first
        hit = next((name for name, keys in cats if any(k in frame for k in keys)), None)
        if hit:
            counts[hit] += 1; break
    else:
        counts["other"] += 1
for line in open(sys.argv[1]):
    if not line.strip():
        flush(); stack = []; continue
    if line.startswith("\t") or line.startswith(" "):
        stack.append(line.strip())
flush()
us = float(sys.argv[2]) if len(sys.argv) > 2 else None
for name, n in counts.most_common():
    pct = 100*n/total
    print(f"{pct:5.1f}%  {name}" + (f"  ≈ {us*pct/100:.1f} µs/record" if us else ""))
print(total, "samples")

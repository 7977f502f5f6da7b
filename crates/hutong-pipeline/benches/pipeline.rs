//! Per-record cost of the pipeline (adapter + validation + envelope +
//! serialisation), for every shipped department source kind, on the first
//! record of its sample export that passes; plus the adapter and the
//! validation alone.
//!
//! `cargo bench -p hutong-pipeline --bench pipeline`
//!
//! It allocates with mimalloc, as `hutong serve` does: allocation is about a quarter of the
//! pipeline's samples, and the system allocator's costs are not the gateway's (docs/benchmarks.md).

use std::{hint::black_box, path::Path};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hutong_adapter::{MapContext, PayloadLimits, PseudonymKey, decode_payload};
use hutong_pipeline::{Outcome, Pipeline, PipelineSettings};
use hutong_proto::v1::SourceRecord;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The first record of each department's sample export that `pipeline` publishes, read as
/// `hutong ingest` reads it. Every shipped kind must have one.
fn samples(pipeline: &Pipeline) -> Vec<(String, String, SourceRecord)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/departments");
    let mut out = Vec::new();
    let mut depts: Vec<_> = std::fs::read_dir(&root).unwrap().map(|d| d.unwrap().path()).collect();
    depts.sort();
    for dept in depts {
        let mut files: Vec<_> =
            std::fs::read_dir(dept.join("samples")).into_iter().flatten().map(|f| f.unwrap().path()).collect();
        files.sort();
        for f in files {
            let d = dept.file_name().unwrap().to_str().unwrap().to_owned();
            let kind = f.file_stem().unwrap().to_str().unwrap().to_owned();
            let lines = hutong_client::read_ndjson(&f, &kind, None).unwrap();
            let first = lines
                .into_iter()
                .map(|l| l.record)
                .find(|r| matches!(pipeline.prepare(&d, r, Utc::now()), Outcome::Publish(_)))
                .unwrap_or_else(|| panic!("no record of {} passes", f.display()));
            out.push((d, kind, first));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let key = PseudonymKey::new(b"bench-key-0123456789".to_vec()).unwrap();
    let pipeline = Pipeline::load(&schemas, key.clone(), PipelineSettings::default()).unwrap();
    let now = Utc::now();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));
    for (dept, kind, rec) in samples(&pipeline) {
        let name = format!("{dept}/{kind} ({} B)", rec.payload.len());
        group.bench_function(format!("prepare {name}"), |b| {
            b.iter(|| pipeline.prepare(black_box(&dept), black_box(&rec), now))
        });
        let adapter = pipeline.adapters().get(&dept, &kind).unwrap();
        let ctx = MapContext { key: &key, source_id: &rec.source_id, revision: 1, op: "upsert" };
        group.bench_function(format!("decode+adapter {name}"), |b| {
            b.iter(|| {
                let payload = decode_payload(black_box(&rec.payload), &rec.charset, PayloadLimits::default()).unwrap();
                adapter.map(&payload, &ctx).unwrap()
            })
        });
        let payload = decode_payload(&rec.payload, &rec.charset, PayloadLimits::default()).unwrap();
        let records = adapter.map(&payload, &ctx).unwrap();
        group.bench_function(format!("validate {name}"), |b| {
            b.iter(|| {
                records
                    .iter()
                    .map(|r| pipeline.standard().validate(&r.entity, black_box(&r.record)).len())
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);

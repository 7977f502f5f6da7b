//! The `hutong.v1.Ingest` service: the guard, then each batch (`batch.rs`)
//! through admission (`admission.rs`), the dedupe window (`dedupe.rs`), the
//! pipeline and delivery with its receipts and the spool (`delivery.rs`).

mod admission;
mod batch;
mod dedupe;
mod delivery;
mod http;

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use hutong_bus::{Publisher, Spool};
use hutong_pipeline::Reloader;
use hutong_proto::v1::{SubmitRequest, SubmitResponse, ingest_server::Ingest};
use tonic::{Request, Response, Status, Streaming};

pub(crate) use delivery::pb_violations;
pub(crate) use http::router as http_router;

use crate::{DeliveryConfig, Guard, Metrics};

/// Requests of one stream processed at once (their answers keep request order).
const STREAM_CONCURRENCY: usize = 8;

/// The `hutong.v1.Ingest` service.
#[derive(Clone)]
pub struct IngestService {
    pipelines: Arc<Reloader>,
    max_records: usize,
    admission: Arc<admission::Admission>,
    delivery: Arc<delivery::Delivery>,
    metrics: Arc<Metrics>,
    guard: Arc<Guard>,
}

impl std::fmt::Debug for IngestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestService").field("max_records", &self.max_records).finish_non_exhaustive()
    }
}

impl IngestService {
    /// A service publishing through `publisher`, accepting at most `max_records` per request.
    pub fn new(
        pipelines: Arc<Reloader>,
        publisher: Arc<dyn Publisher>,
        max_records: usize,
        delivery: DeliveryConfig,
        metrics: Arc<Metrics>,
        guard: Arc<Guard>,
    ) -> Self {
        Self {
            pipelines,
            max_records,
            admission: Arc::new(admission::Admission::new(&delivery)),
            delivery: Arc::new(delivery::Delivery {
                publisher,
                spool: None,
                dedupe: Arc::new(dedupe::Dedupe::new(&delivery)),
            }),
            metrics,
            guard,
        }
    }

    /// Store and forward through `spool` while Kafka is unreachable.
    pub fn with_spool(self, spool: Arc<Spool>) -> Self {
        let delivery = delivery::Delivery {
            publisher: Arc::clone(&self.delivery.publisher),
            spool: Some(spool),
            dedupe: Arc::clone(&self.delivery.dedupe),
        };
        Self { delivery: Arc::new(delivery), ..self }
    }

    /// Records accepted and not yet answered, across departments.
    pub fn in_flight(&self) -> usize {
        self.admission.in_flight()
    }

    /// Whether any department has an adapter for `kind`.
    fn has_adapter(&self, kind: &str) -> bool {
        self.pipelines.current().adapters().iter().any(|a| a.kind == kind)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<SubmitResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<SubmitResponse>, Status> {
        let department = self.guard.department(&request, "Submit")?;
        let peer = request.remote_addr();
        let req = request.into_inner();
        let kinds = req.records.iter().map(|r| r.kind.as_str());
        self.guard.check_kinds(&department, peer, "Submit", kinds, |k| self.has_adapter(k))?;
        self.audited_batch(&department, peer, req).await.map(Response::new)
    }

    type SubmitStreamStream = ResponseStream;

    async fn submit_stream(
        &self,
        request: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<Self::SubmitStreamStream>, Status> {
        let department: Arc<str> = self.guard.department(&request, "SubmitStream")?.into();
        let peer = request.remote_addr();
        let service = self.clone();
        let stream = request
            .into_inner()
            .map(move |req| {
                let service = service.clone();
                let department = Arc::clone(&department);
                async move {
                    let req = req?;
                    let kinds = req.records.iter().map(|r| r.kind.as_str());
                    service.guard.check_kinds(&department, peer, "SubmitStream", kinds, |k| service.has_adapter(k))?;
                    service.audited_batch(&department, peer, req).await
                }
            })
            .buffered(STREAM_CONCURRENCY);
        Ok(Response::new(Box::pin(stream)))
    }
}

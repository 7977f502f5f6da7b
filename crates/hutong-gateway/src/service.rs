use std::{pin::Pin, sync::Arc};

use chrono::Utc;
use futures::{Stream, StreamExt, future::try_join_all};
use hutong_bus::{BusError, Publisher};
use hutong_proto::v1::{
    Receipt, RecordResult, SourceRecord, Status as RecordStatus, SubmitRequest, SubmitResponse, Violation,
    ingest_server::Ingest,
};
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::{Outcome, Reloader, department_from_request};

/// Requests of one stream processed at once (their answers keep request order).
const STREAM_CONCURRENCY: usize = 8;

/// The `hutong.v1.Ingest` service.
#[derive(Clone)]
pub struct IngestService {
    pipelines: Arc<Reloader>,
    publisher: Arc<dyn Publisher>,
    max_records: usize,
}

impl std::fmt::Debug for IngestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestService").field("max_records", &self.max_records).finish_non_exhaustive()
    }
}

impl IngestService {
    /// A service publishing through `publisher`, accepting at most `max_records` per request.
    pub fn new(pipelines: Arc<Reloader>, publisher: Arc<dyn Publisher>, max_records: usize) -> Self {
        Self { pipelines, publisher, max_records }
    }

    /// Handles one batch: every record prepared, every message published
    /// concurrently, the answer built only after every delivery report.
    pub async fn submit_batch(&self, department: &str, req: SubmitRequest) -> Result<SubmitResponse, Status> {
        if req.records.len() > self.max_records {
            return Err(Status::invalid_argument(format!(
                "{} records in one request; the limit is {}",
                req.records.len(),
                self.max_records
            )));
        }
        let received = Utc::now();
        // The whole batch runs on the pipeline current at its start, even if a reload lands meanwhile.
        let pipeline = self.pipelines.current();
        let futures = req.records.iter().enumerate().map(|(index, rec)| {
            let outcome = pipeline.prepare(department, rec, received);
            self.publish_record(index, rec, outcome)
        });
        let results = try_join_all(futures).await.map_err(|e| {
            warn!(department, error = %e, "batch not delivered");
            status_from_bus(&e)
        })?;
        let rejected = results.iter().filter(|r| r.status == RecordStatus::Rejected as i32).count();
        info!(department, records = results.len(), rejected, "batch handled");
        Ok(SubmitResponse { batch_id: req.batch_id, results })
    }

    async fn publish_record(
        &self,
        index: usize,
        rec: &SourceRecord,
        outcome: Outcome,
    ) -> Result<RecordResult, BusError> {
        let (status, messages, violations) = match outcome {
            Outcome::Publish(prepared) => {
                (RecordStatus::Published, prepared.into_iter().map(|p| p.message).collect::<Vec<_>>(), vec![])
            }
            Outcome::Reject { violations, dlq } => (RecordStatus::Rejected, vec![*dlq], violations),
        };
        let entities: Vec<String> = messages
            .iter()
            .map(|m| if status == RecordStatus::Rejected { "dlq".to_owned() } else { entity_of(&m.event.ty) })
            .collect();
        let ids: Vec<String> = messages.iter().map(|m| m.event.id.clone()).collect();
        let delivered = try_join_all(messages.into_iter().map(|m| self.publisher.publish(m))).await?;
        let receipts = delivered
            .into_iter()
            .zip(ids)
            .zip(entities)
            .map(|((r, event_id), entity)| Receipt {
                topic: r.topic,
                partition: r.partition,
                offset: r.offset,
                event_id,
                entity,
            })
            .collect();
        Ok(RecordResult {
            index: index as u32,
            source_id: rec.source_id.clone(),
            revision: rec.revision,
            status: status as i32,
            receipts,
            violations: violations
                .into_iter()
                .map(|v| Violation { pointer: v.pointer, rule: v.rule, message: v.message })
                .collect(),
        })
    }
}

/// `cn.hutong.<entity>.<op>` → `<entity>`.
fn entity_of(ce_type: &str) -> String {
    ce_type.split('.').nth(2).unwrap_or_default().to_owned()
}

/// The one mapping from bus trouble to gRPC codes.
pub(crate) fn status_from_bus(e: &BusError) -> Status {
    match e {
        BusError::Unavailable(m) => Status::unavailable(format!("kafka unavailable, retry later: {m}")),
        BusError::QueueFull => Status::resource_exhausted("gateway is at capacity, retry later"),
        BusError::Refused(m) => Status::failed_precondition(format!("kafka refused the record: {m}")),
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<SubmitResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<SubmitResponse>, Status> {
        let department = department_from_request(&request)?;
        self.submit_batch(&department, request.into_inner()).await.map(Response::new)
    }

    type SubmitStreamStream = ResponseStream;

    async fn submit_stream(
        &self,
        request: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<Self::SubmitStreamStream>, Status> {
        let department: Arc<str> = department_from_request(&request)?.into();
        let service = self.clone();
        let stream = request
            .into_inner()
            .map(move |req| {
                let service = service.clone();
                let department = Arc::clone(&department);
                async move { service.submit_batch(&department, req?).await }
            })
            .buffered(STREAM_CONCURRENCY);
        Ok(Response::new(Box::pin(stream)))
    }
}

//! The `hutong.v1.Admin` service, and the dry run it shares with the CLI
//! (`hutong validate`), so both give the same answers.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hutong_compat::Mode;
use hutong_proto::v1::{
    AdapterInfo, CanonicalRecord, CheckCompatibilityRequest, CheckCompatibilityResponse, GetSchemaRequest,
    GetSchemaResponse, ListAdaptersRequest, ListAdaptersResponse, ListSchemasRequest, ListSchemasResponse,
    SchemaChange, SourceRecord, SubjectInfo, ValidateRecordRequest, ValidateRecordResponse, admin_server::Admin,
};
use hutong_registry::Registry;
use hutong_standard::Violation;
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

use crate::{Guard, Outcome, Pipeline, Reloader};

/// The outcome of a dry run of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRun {
    /// `(entity, topic, key, event id, canonical record)` of each output, when valid.
    pub records: Vec<(String, String, Option<String>, String, Value)>,
    /// Every reason, when rejected.
    pub violations: Vec<Violation>,
}

impl DryRun {
    /// Whether the record would be published.
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }

    /// The JSON line `hutong validate` prints for it.
    pub fn to_json(&self, line: usize, source_id: &str) -> Value {
        if self.is_valid() {
            json!({
                "line": line,
                "source_id": source_id,
                "status": "VALID",
                "records": self.records.iter().map(|(entity, topic, key, event_id, value)| json!({
                    "entity": entity, "topic": topic, "key": key, "event_id": event_id, "value": value,
                })).collect::<Vec<_>>(),
            })
        } else {
            json!({"line": line, "source_id": source_id, "status": "REJECTED", "violations": self.violations})
        }
    }
}

/// Runs one record through adapter and standard; nothing is published.
pub fn dry_run(pipeline: &Pipeline, department: &str, rec: &SourceRecord, received: DateTime<Utc>) -> DryRun {
    match pipeline.prepare(department, rec, received) {
        Outcome::Publish(prepared) => DryRun {
            records: prepared
                .into_iter()
                .map(|p| (p.entity, p.message.topic, p.message.key, p.message.event.id, p.record))
                .collect(),
            violations: vec![],
        },
        Outcome::Reject { violations, .. } => DryRun { records: vec![], violations },
    }
}

/// Checks `schema` as the next version of `subject` (CLI `hutong schema check`
/// and the admin RPC share it).
pub fn check_subject(
    registry: &Registry,
    subject: &str,
    schema: &Value,
    mode: Option<Mode>,
) -> Result<(Mode, hutong_compat::Report), String> {
    if registry.versions(subject).is_none() {
        return Err(format!("no subject {subject}"));
    }
    let mode = mode.unwrap_or_else(|| registry.compatibility(subject));
    Ok((mode, registry.check(subject, schema, Some(mode))))
}

/// The admin service over the gateway's current pipeline. Every call needs
/// an admin identity the policy grants the operation; every call is audited.
#[derive(Debug, Clone)]
pub struct AdminService {
    pipelines: Arc<Reloader>,
    guard: Arc<Guard>,
}

impl AdminService {
    /// The admin service of `pipelines`, guarded by `guard`.
    pub fn new(pipelines: Arc<Reloader>, guard: Arc<Guard>) -> Self {
        Self { pipelines, guard }
    }

    /// Audits a finished admin call (what was asked, never a payload).
    fn audited<R>(&self, admin: &str, operation: &str, detail: Value, result: Result<R, Status>) -> Result<R, Status> {
        let outcome = match &result {
            Ok(_) => "Ok".to_owned(),
            Err(s) => format!("{:?}", s.code()),
        };
        self.guard.auditor().record(json!({
            "type": "admin", "principal": admin, "role": "admin", "operation": operation,
            "detail": detail, "outcome": outcome,
        }));
        result
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn validate_record(
        &self,
        request: Request<ValidateRecordRequest>,
    ) -> Result<Response<ValidateRecordResponse>, Status> {
        let admin = self.guard.admin(&request, "ValidateRecord")?;
        let req = request.into_inner();
        let detail = json!({"department": req.department, "kind": req.record.as_ref().map(|r| r.kind.clone())});
        let result = self.validate(req);
        self.audited(&admin, "ValidateRecord", detail, result)
    }

    async fn list_schemas(
        &self,
        request: Request<ListSchemasRequest>,
    ) -> Result<Response<ListSchemasResponse>, Status> {
        let admin = self.guard.admin(&request, "ListSchemas")?;
        let result = Ok(self.schemas());
        self.audited(&admin, "ListSchemas", Value::Null, result)
    }

    async fn get_schema(&self, request: Request<GetSchemaRequest>) -> Result<Response<GetSchemaResponse>, Status> {
        let admin = self.guard.admin(&request, "GetSchema")?;
        let req = request.into_inner();
        let detail = json!({"subject": req.subject, "version": req.version});
        let result = self.schema(req);
        self.audited(&admin, "GetSchema", detail, result)
    }

    async fn check_compatibility(
        &self,
        request: Request<CheckCompatibilityRequest>,
    ) -> Result<Response<CheckCompatibilityResponse>, Status> {
        let admin = self.guard.admin(&request, "CheckCompatibility")?;
        let req = request.into_inner();
        let detail = json!({"subject": req.subject, "mode": req.mode});
        let result = self.compatibility(req);
        self.audited(&admin, "CheckCompatibility", detail, result)
    }

    async fn list_adapters(
        &self,
        request: Request<ListAdaptersRequest>,
    ) -> Result<Response<ListAdaptersResponse>, Status> {
        let admin = self.guard.admin(&request, "ListAdapters")?;
        let result = Ok(self.adapters());
        self.audited(&admin, "ListAdapters", Value::Null, result)
    }
}

impl AdminService {
    fn validate(&self, req: ValidateRecordRequest) -> Result<Response<ValidateRecordResponse>, Status> {
        let rec = req.record.ok_or_else(|| Status::invalid_argument("record is required"))?;
        let run = dry_run(&self.pipelines.current(), &req.department, &rec, Utc::now());
        Ok(Response::new(ValidateRecordResponse {
            valid: run.is_valid(),
            records: run
                .records
                .into_iter()
                .map(|(entity, topic, key, event_id, value)| CanonicalRecord {
                    entity,
                    topic,
                    key: key.unwrap_or_default(),
                    event_id,
                    json: value.to_string(),
                })
                .collect(),
            violations: crate::service::pb_violations(run.violations),
        }))
    }

    fn schemas(&self) -> Response<ListSchemasResponse> {
        let pipeline = self.pipelines.current();
        let r = pipeline.registry();
        let subjects = r
            .subjects()
            .into_iter()
            .map(|s| SubjectInfo {
                subject: s.to_owned(),
                versions: r.versions(s).unwrap_or_default(),
                compatibility: r.compatibility(s).name().to_owned(),
                latest_id: r.version(s, None).map(|v| v.id).unwrap_or_default(),
            })
            .collect();
        Response::new(ListSchemasResponse { subjects })
    }

    fn schema(&self, req: GetSchemaRequest) -> Result<Response<GetSchemaResponse>, Status> {
        let pipeline = self.pipelines.current();
        let version = (req.version > 0).then_some(req.version);
        let v = pipeline
            .registry()
            .version(&req.subject, version)
            .ok_or_else(|| Status::not_found(format!("no version {} of subject {}", req.version, req.subject)))?;
        Ok(Response::new(GetSchemaResponse {
            subject: v.subject.clone(),
            version: v.version,
            id: v.id,
            schema_json: v.schema.to_string(),
            standard_version: v.standard_version.clone(),
        }))
    }

    fn compatibility(&self, req: CheckCompatibilityRequest) -> Result<Response<CheckCompatibilityResponse>, Status> {
        let schema: Value = serde_json::from_str(&req.schema_json)
            .map_err(|e| Status::invalid_argument(format!("schema_json is not JSON: {e}")))?;
        let mode = if req.mode.is_empty() {
            None
        } else {
            Some(req.mode.parse::<Mode>().map_err(|e| Status::invalid_argument(e.to_string()))?)
        };
        let pipeline = self.pipelines.current();
        let (mode, report) =
            check_subject(pipeline.registry(), &req.subject, &schema, mode).map_err(Status::not_found)?;
        Ok(Response::new(CheckCompatibilityResponse {
            compatible: report.compatible,
            mode: mode.name().to_owned(),
            changes: report
                .all
                .iter()
                .map(|c| SchemaChange {
                    kind: c.kind.name().to_owned(),
                    pointer: c.pointer.clone(),
                    compatible: c.is_compatible(),
                    description: c.kind.description().to_owned(),
                })
                .collect(),
        }))
    }

    fn adapters(&self) -> Response<ListAdaptersResponse> {
        let pipeline = self.pipelines.current();
        let status = self.pipelines.status();
        Response::new(ListAdaptersResponse {
            adapters: pipeline
                .adapters()
                .iter()
                .map(|a| AdapterInfo {
                    department: a.department.clone(),
                    kind: a.kind.clone(),
                    source_version: a.source_version.clone(),
                    title: a.title.clone(),
                    entities: a.entities().map(str::to_owned).collect(),
                    path: a.path.display().to_string(),
                })
                .collect(),
            reload_generation: status.generation,
            reload_error: status.last_error.unwrap_or_default(),
        })
    }
}

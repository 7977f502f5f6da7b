//! The `hutong.v1.Admin` service: the dry run, the registry and the adapters,
//! answering what the matching CLI commands print (they share the code:
//! `hutong_pipeline::dry_run`, `Registry::check_subject`).

use std::sync::Arc;

use chrono::Utc;
use hutong_compat::Mode;
use hutong_pipeline::{Reloader, dry_run};
use hutong_proto::v1::{
    AdapterInfo, CanonicalRecord, CheckCompatibilityRequest, CheckCompatibilityResponse, GetSchemaRequest,
    GetSchemaResponse, ListAdaptersRequest, ListAdaptersResponse, ListSchemasRequest, ListSchemasResponse,
    SchemaChange, SubjectInfo, ValidateRecordRequest, ValidateRecordResponse, admin_server::Admin,
};
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

use crate::{ErrorCode, Guard, audit::AuditEvent, ingest::pb_violations};

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
    fn audited<R>(
        &self,
        admin: &str,
        operation: &'static str,
        detail: Value,
        result: Result<R, Status>,
    ) -> Result<R, Status> {
        let outcome = match &result {
            Ok(_) => "Ok".to_owned(),
            Err(s) => format!("{:?}", s.code()),
        };
        self.guard.auditor().record(AuditEvent::Admin {
            principal: admin.to_owned(),
            role: "admin",
            operation,
            detail,
            outcome,
        });
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
        let rec = req.record.ok_or_else(|| ErrorCode::InvalidArgument.status("record is required"))?;
        let run = dry_run(&self.pipelines.current(), &req.department, &rec, Utc::now());
        Ok(Response::new(ValidateRecordResponse {
            valid: run.is_valid(),
            records: run
                .records
                .into_iter()
                .map(|r| CanonicalRecord {
                    entity: r.entity,
                    topic: r.topic,
                    key: r.key.unwrap_or_default(),
                    event_id: r.event_id,
                    json: r.value.to_string(),
                })
                .collect(),
            violations: pb_violations(run.violations),
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
        let v = pipeline.registry().version(&req.subject, version).ok_or_else(|| {
            ErrorCode::NotFound.status(format!("no version {} of subject {}", req.version, req.subject))
        })?;
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
            .map_err(|e| ErrorCode::InvalidArgument.status(format!("schema_json is not JSON: {e}")))?;
        let mode = if req.mode.is_empty() {
            None
        } else {
            Some(req.mode.parse::<Mode>().map_err(|e| ErrorCode::InvalidArgument.status(e.to_string()))?)
        };
        let pipeline = self.pipelines.current();
        let (mode, report) = pipeline
            .registry()
            .check_subject(&req.subject, &schema, None, mode)
            .map_err(|e| ErrorCode::NotFound.status(e.to_string()))?;
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

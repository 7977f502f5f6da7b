//! The schema registry's REST API, compatible with the Confluent Schema
//! Registry (JSON `schemaType`), read side: existing Kafka tools and
//! serializers can list subjects and fetch the standard's schemas, and
//! `ce_dataschema` (`<public-url>/schemas/ids/<id>`) resolves here.
//! Registration is not done over HTTP: `hutong schema register` and a deploy.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hutong_pipeline::Reloader;
use hutong_registry::{RegistryError, SchemaVersion};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ErrorCode;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The registry routes over the pipelines' current registry.
pub fn router(pipelines: Arc<Reloader>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(StatusCode::OK, json!({})) }))
        .route("/schemas/types", get(|| async { reply(StatusCode::OK, json!(["JSON"])) }))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup))
        .route("/subjects/{subject}/versions", get(versions).post(read_only))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route("/subjects/{subject}/versions/{version}/schema", get(version_schema))
        .route("/schemas/ids/{id}", get(by_id))
        .route("/schemas/ids/{id}/schema", get(by_id_schema))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility))
        .route("/compatibility/subjects/{subject}/versions", post(compatibility_all))
        .route("/config", get(global_config))
        .route("/config/{subject}", get(subject_config))
        .with_state(pipelines)
}

/// The resource catalogue (政务信息资源目录), read-only JSON: `GET /catalog` (every resource)
/// and `GET /catalog/{id}` (one), built from the pipelines' current standard and adapters and
/// the deployment's topic plan. Who may use what is asked of the consumer service
/// (`hutong.v1.Access`), which knows the grants.
pub fn catalog_router(pipelines: Arc<Reloader>, plan: Arc<hutong_bus::TopicPlan>) -> Router {
    let catalog = move |p: &Reloader| {
        let current = p.current();
        hutong_sharing::Catalog::build(current.standard(), current.adapters(), &plan)
    };
    let one = catalog.clone();
    Router::new()
        .route(
            "/catalog",
            get(move |State(p): State<Arc<Reloader>>| {
                let c = catalog(&p);
                async move { Json(json!({"standard": c.standard, "resources": c.resources})).into_response() }
            }),
        )
        .route(
            "/catalog/{id}",
            get(move |State(p): State<Arc<Reloader>>, Path(id): Path<String>| {
                let found = one(&p).get(&id).cloned();
                async move {
                    match found {
                        Some(r) => Json(r).into_response(),
                        None => (
                            StatusCode::NOT_FOUND,
                            Json(json!({"error": format!("no resource {id:?} in the catalogue")})),
                        )
                            .into_response(),
                    }
                }
            }),
        )
        .with_state(pipelines)
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

/// An error answer in Confluent's shape (`error_code`, `message`); its HTTP status comes from
/// the gateway's one [`ErrorCode`] mapping.
#[derive(Debug)]
struct ApiError {
    code: ErrorCode,
    /// Confluent's error code, e.g. 40401.
    confluent: u32,
    message: String,
}

impl ApiError {
    fn new(code: ErrorCode, confluent: u32, message: impl Into<String>) -> Self {
        Self { code, confluent, message: message.into() }
    }

    fn subject_not_found(subject: &str) -> Self {
        Self::new(ErrorCode::NotFound, 40401, format!("Subject '{subject}' not found."))
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownSubject { subject } => Self::subject_not_found(&subject),
            RegistryError::UnknownVersion { version, .. } => {
                Self::new(ErrorCode::NotFound, 40402, format!("Version {version} not found."))
            }
            other => Self::new(ErrorCode::Internal, 50001, other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(self.code.http(), json!({"error_code": self.confluent, "message": self.message}))
    }
}

type ApiResult = Result<Response, ApiError>;

type S = State<Arc<Reloader>>;

async fn subjects(State(p): S) -> Response {
    reply(StatusCode::OK, json!(p.current().registry().subjects()))
}

async fn versions(State(p): S, Path(subject): Path<String>) -> ApiResult {
    let v = p.current().registry().versions(&subject).ok_or_else(|| ApiError::subject_not_found(&subject))?;
    Ok(reply(StatusCode::OK, json!(v)))
}

/// `latest`, `-1` or a positive number.
fn parse_version(v: &str) -> Result<Option<u32>, ApiError> {
    match v {
        "latest" | "-1" => Ok(None),
        n => n.parse::<u32>().ok().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidArgument,
                42202,
                "The specified version is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"",
            )
        }),
    }
}

fn find_version(p: &Reloader, subject: &str, version: &str) -> Result<SchemaVersion, ApiError> {
    let v = parse_version(version)?;
    let pipeline = p.current();
    let registry = pipeline.registry();
    if registry.versions(subject).is_none() {
        return Err(ApiError::subject_not_found(subject));
    }
    registry
        .version(subject, v)
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, 40402, format!("Version {version} not found.")))
}

/// A version as Confluent's API describes it.
fn described(s: &SchemaVersion) -> Value {
    json!({"subject": s.subject, "id": s.id, "version": s.version, "schemaType": "JSON", "schema": s.schema.to_string()})
}

async fn version(State(p): S, Path((subject, version)): Path<(String, String)>) -> ApiResult {
    Ok(reply(StatusCode::OK, described(&find_version(&p, &subject, &version)?)))
}

async fn version_schema(State(p): S, Path((subject, version)): Path<(String, String)>) -> ApiResult {
    Ok(reply(StatusCode::OK, find_version(&p, &subject, &version)?.schema))
}

fn schema_by_id(p: &Reloader, id: &str) -> Result<SchemaVersion, ApiError> {
    let pipeline = p.current();
    id.parse::<u32>()
        .ok()
        .and_then(|id| pipeline.registry().by_id(id).cloned())
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, 40403, "Schema not found"))
}

async fn by_id(State(p): S, Path(id): Path<String>) -> ApiResult {
    let s = schema_by_id(&p, &id)?;
    Ok(reply(StatusCode::OK, json!({"schemaType": "JSON", "schema": s.schema.to_string()})))
}

async fn by_id_schema(State(p): S, Path(id): Path<String>) -> ApiResult {
    Ok(reply(StatusCode::OK, schema_by_id(&p, &id)?.schema))
}

/// The body of lookup and compatibility requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
}

fn parse_body(body: &SchemaBody) -> Result<Value, ApiError> {
    if body.schema_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JSON")) {
        return Err(ApiError::new(ErrorCode::InvalidArgument, 42201, "Only schemaType JSON is served here"));
    }
    serde_json::from_str(&body.schema)
        .map_err(|e| ApiError::new(ErrorCode::InvalidArgument, 42201, format!("Invalid schema: {e}")))
}

async fn lookup(State(p): S, Path(subject): Path<String>, Json(body): Json<SchemaBody>) -> ApiResult {
    let schema = parse_body(&body)?;
    let pipeline = p.current();
    let registry = pipeline.registry();
    if registry.versions(&subject).is_none() {
        return Err(ApiError::subject_not_found(&subject));
    }
    let s = registry
        .find(&subject, &schema)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, 40403, "Schema not found"))?;
    Ok(reply(StatusCode::OK, described(s)))
}

async fn read_only(Path(subject): Path<String>) -> ApiError {
    ApiError::new(
        ErrorCode::ReadOnly,
        40301,
        format!("this registry is read-only: register {subject} with `hutong schema register`, review, and deploy"),
    )
}

/// Against one version (`Some`: that version, or every version up to it if the subject's
/// mode is transitive) or every version (`None`: the transitive form of the mode).
fn check(p: &Reloader, subject: &str, version: Option<&str>, body: &SchemaBody) -> ApiResult {
    let schema = parse_body(body)?;
    let pipeline = p.current();
    let registry = pipeline.registry();
    let (upto, mode) = match version {
        Some(v) => (parse_version(v)?, None),
        None => (None, Some(registry.compatibility(subject).transitive())),
    };
    let (_, report) = registry.check_subject(subject, &schema, upto, mode)?;
    let messages: Vec<String> = report.incompatible.iter().map(ToString::to_string).collect();
    Ok(reply(StatusCode::OK, json!({"is_compatible": report.compatible, "messages": messages})))
}

async fn compatibility(
    State(p): S,
    Path((subject, version)): Path<(String, String)>,
    Json(body): Json<SchemaBody>,
) -> ApiResult {
    check(&p, &subject, Some(&version), &body)
}

async fn compatibility_all(State(p): S, Path(subject): Path<String>, Json(body): Json<SchemaBody>) -> ApiResult {
    check(&p, &subject, None, &body)
}

async fn global_config(State(p): S) -> Response {
    reply(StatusCode::OK, json!({"compatibilityLevel": p.current().registry().default_compatibility().name()}))
}

async fn subject_config(State(p): S, Path(subject): Path<String>) -> ApiResult {
    let pipeline = p.current();
    if pipeline.registry().versions(&subject).is_none() {
        return Err(ApiError::subject_not_found(&subject));
    }
    Ok(reply(StatusCode::OK, json!({"compatibilityLevel": pipeline.registry().compatibility(&subject).name()})))
}

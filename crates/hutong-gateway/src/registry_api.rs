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
use hutong_compat::Mode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Reloader;

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

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

fn error(status: StatusCode, code: u32, message: impl Into<String>) -> Response {
    reply(status, json!({"error_code": code, "message": message.into()}))
}

fn subject_not_found(subject: &str) -> Response {
    error(StatusCode::NOT_FOUND, 40401, format!("Subject '{subject}' not found."))
}

type S = State<Arc<Reloader>>;

async fn subjects(State(p): S) -> Response {
    reply(StatusCode::OK, json!(p.current().registry().subjects()))
}

async fn versions(State(p): S, Path(subject): Path<String>) -> Response {
    match p.current().registry().versions(&subject) {
        Some(v) => reply(StatusCode::OK, json!(v)),
        None => subject_not_found(&subject),
    }
}

/// `latest`, `-1` or a positive number.
fn parse_version(v: &str) -> Result<Option<u32>, Response> {
    match v {
        "latest" | "-1" => Ok(None),
        n => n.parse::<u32>().ok().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                42202,
                "The specified version is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"",
            )
        }),
    }
}

fn find_version(p: &Reloader, subject: &str, version: &str) -> Result<hutong_registry::SchemaVersion, Response> {
    let v = parse_version(version)?;
    let pipeline = p.current();
    let registry = pipeline.registry();
    if registry.versions(subject).is_none() {
        return Err(subject_not_found(subject));
    }
    registry
        .version(subject, v)
        .cloned()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, 40402, format!("Version {version} not found.")))
}

async fn version(State(p): S, Path((subject, version)): Path<(String, String)>) -> Response {
    match find_version(&p, &subject, &version) {
        Ok(s) => reply(
            StatusCode::OK,
            json!({"subject": s.subject, "id": s.id, "version": s.version, "schemaType": "JSON", "schema": s.schema.to_string()}),
        ),
        Err(r) => r,
    }
}

async fn version_schema(State(p): S, Path((subject, version)): Path<(String, String)>) -> Response {
    match find_version(&p, &subject, &version) {
        Ok(s) => reply(StatusCode::OK, s.schema),
        Err(r) => r,
    }
}

fn schema_by_id(p: &Reloader, id: &str) -> Result<hutong_registry::SchemaVersion, Response> {
    let pipeline = p.current();
    id.parse::<u32>()
        .ok()
        .and_then(|id| pipeline.registry().by_id(id).cloned())
        .ok_or_else(|| error(StatusCode::NOT_FOUND, 40403, "Schema not found"))
}

async fn by_id(State(p): S, Path(id): Path<String>) -> Response {
    match schema_by_id(&p, &id) {
        Ok(s) => reply(StatusCode::OK, json!({"schemaType": "JSON", "schema": s.schema.to_string()})),
        Err(r) => r,
    }
}

async fn by_id_schema(State(p): S, Path(id): Path<String>) -> Response {
    match schema_by_id(&p, &id) {
        Ok(s) => reply(StatusCode::OK, s.schema),
        Err(r) => r,
    }
}

/// The body of lookup and compatibility requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
}

fn parse_body(body: &SchemaBody) -> Result<Value, Response> {
    if body.schema_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JSON")) {
        return Err(error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Only schemaType JSON is served here"));
    }
    serde_json::from_str(&body.schema)
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, 42201, format!("Invalid schema: {e}")))
}

async fn lookup(State(p): S, Path(subject): Path<String>, Json(body): Json<SchemaBody>) -> Response {
    let schema = match parse_body(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let pipeline = p.current();
    let registry = pipeline.registry();
    if registry.versions(&subject).is_none() {
        return subject_not_found(&subject);
    }
    match registry.find(&subject, &schema) {
        Some(s) => reply(
            StatusCode::OK,
            json!({"subject": s.subject, "id": s.id, "version": s.version, "schemaType": "JSON", "schema": s.schema.to_string()}),
        ),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

async fn read_only(Path(subject): Path<String>) -> Response {
    error(
        StatusCode::FORBIDDEN,
        40301,
        format!("this registry is read-only: register {subject} with `hutong schema register`, review, and deploy"),
    )
}

fn check(p: &Reloader, subject: &str, version: Option<&str>, body: &SchemaBody) -> Response {
    let schema = match parse_body(body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let pipeline = p.current();
    let registry = pipeline.registry();
    let Some(all) = registry.versions(subject) else { return subject_not_found(subject) };
    let mode = registry.compatibility(subject);
    // Against one version (non-transitive) or every version up to it.
    let upto = match version.map(parse_version).transpose() {
        Ok(v) => v.flatten().unwrap_or(*all.last().unwrap_or(&0)),
        Err(r) => return r,
    };
    if !all.contains(&upto) {
        return error(StatusCode::NOT_FOUND, 40402, format!("Version {upto} not found."));
    }
    let history: Vec<Value> = all
        .iter()
        .filter(|v| **v <= upto && (version.is_none() || mode.is_transitive() || **v == upto))
        .filter_map(|v| registry.version(subject, Some(*v)).map(|s| s.schema.clone()))
        .collect();
    let mode = if version.is_none() { transitive(mode) } else { mode };
    let report = hutong_compat::check(&history, &schema, mode);
    let messages: Vec<String> = report.incompatible.iter().map(ToString::to_string).collect();
    reply(StatusCode::OK, json!({"is_compatible": report.compatible, "messages": messages}))
}

/// Checking against "all versions" is the transitive form of the mode.
fn transitive(mode: Mode) -> Mode {
    match mode {
        Mode::Backward => Mode::BackwardTransitive,
        Mode::Forward => Mode::ForwardTransitive,
        Mode::Full => Mode::FullTransitive,
        other => other,
    }
}

async fn compatibility(
    State(p): S,
    Path((subject, version)): Path<(String, String)>,
    Json(body): Json<SchemaBody>,
) -> Response {
    check(&p, &subject, Some(&version), &body)
}

async fn compatibility_all(State(p): S, Path(subject): Path<String>, Json(body): Json<SchemaBody>) -> Response {
    check(&p, &subject, None, &body)
}

async fn global_config(State(p): S) -> Response {
    reply(StatusCode::OK, json!({"compatibilityLevel": p.current().registry().default_compatibility().name()}))
}

async fn subject_config(State(p): S, Path(subject): Path<String>) -> Response {
    let pipeline = p.current();
    if pipeline.registry().versions(&subject).is_none() {
        return subject_not_found(&subject);
    }
    reply(StatusCode::OK, json!({"compatibilityLevel": pipeline.registry().compatibility(&subject).name()}))
}

//! `POST /v1/submit`: the Submit RPC for systems that cannot speak gRPC, on the gateway's own
//! port. The JSON body mirrors `SubmitRequest` — `{"batch_id", "records": [{"kind",
//! "source_id", "revision", "op", "occurred_at", "charset", "payload" | "payload_base64"}]}` —
//! and the answer `SubmitResponse`, each result as `hutong ingest --json` prints it. The call
//! is the RPC itself: the same TLS client certificate (or bearer token) names the department,
//! the same policy, limits, per-record answers and audit trail.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use hutong_proto::{
    json::{record_result, source_record},
    v1::{SubmitRequest, ingest_server::Ingest},
};
use serde_json::{Value, json};

use std::sync::Arc;

use super::IngestService;
use crate::ErrorCode;

/// The route, with bodies up to `max_bytes` (the gRPC message limit).
pub(crate) fn router(service: IngestService, max_bytes: usize) -> Router {
    Router::new()
        .route("/v1/submit", post(submit))
        .layer(DefaultBodyLimit::max(max_bytes))
        .with_state(Arc::new(Http { service, max_bytes }))
}

struct Http {
    service: IngestService,
    max_bytes: usize,
}

fn refused(code: ErrorCode, message: String) -> Response {
    (code.http(), Json(json!({"code": format!("{:?}", code.grpc()), "message": message}))).into_response()
}

/// The request's records, or what is malformed in the body (the whole call is refused, as a
/// malformed protobuf message is).
fn parse(body: &[u8]) -> Result<SubmitRequest, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(mut obj) = v else { return Err("the body must be an object {\"batch_id\", \"records\"}".into()) };
    let batch_id = match obj.remove("batch_id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(_) => return Err("batch_id must be a string".into()),
    };
    let Some(Value::Array(list)) = obj.remove("records") else {
        return Err("records must be an array of records".into());
    };
    let records = list
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let Value::Object(r) = r else { return Err(format!("records[{i}] must be an object")) };
            let kind = match r.get("kind") {
                Some(Value::String(k)) if !k.is_empty() => k.clone(),
                _ => return Err(format!("records[{i}]: kind (the department's source kind) is required")),
            };
            if !r.get("source_id").is_some_and(|s| s.is_string() || s.is_number()) {
                return Err(format!(
                    "records[{i}]: source_id (the record's id in the department's system) is required"
                ));
            }
            if !r.get("revision").is_some_and(Value::is_u64) {
                return Err(format!(
                    "records[{i}]: revision (a version number, or a last-modified time as Unix seconds) is required"
                ));
            }
            source_record(r, &kind, "").map_err(|e| format!("records[{i}]: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SubmitRequest { batch_id, records })
}

/// Reads a refused request's body to its end (up to `max` bytes) without keeping it: a client
/// still sending when the answer comes would see its stream reset, not the answer.
async fn drain(body: axum::body::Body, max: usize) {
    use futures::StreamExt as _;
    let mut chunks = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = chunks.next().await {
        seen += chunk.len();
        if seen > max {
            break;
        }
    }
}

async fn submit(State(http): State<Arc<Http>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // Who is calling, before the body is read: an anonymous caller gets no memory for one.
    let caller = tonic::Request::from_parts(
        tonic::metadata::MetadataMap::from_headers(parts.headers.clone()),
        parts.extensions.clone(),
        (),
    );
    if let Err(status) = http.service.guard.department(&caller, "Submit") {
        drain(body, http.max_bytes).await;
        return refused(ErrorCode::of_grpc(status.code()), status.message().to_owned());
    }
    // JSON only: a form a browser can post across sites without asking is not a submission.
    let json = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        drain(body, http.max_bytes).await;
        let message = "the body must be JSON: send content-type: application/json";
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(json!({"code": "InvalidArgument", "message": message})))
            .into_response();
    }
    let body: Bytes = match axum::body::to_bytes(body, http.max_bytes).await {
        Ok(b) => b,
        Err(_) => {
            let message = format!("the body is larger than limits.max-message-bytes ({} bytes)", http.max_bytes);
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"code": "OutOfRange", "message": message})))
                .into_response();
        }
    };
    let submit = match parse(&body) {
        Ok(s) => s,
        Err(message) => return refused(ErrorCode::InvalidArgument, message),
    };
    // The RPC itself, with the connection's identity (TLS peer certificate, address) and the
    // headers as its metadata (the bearer token of token mode).
    let call =
        tonic::Request::from_parts(tonic::metadata::MetadataMap::from_headers(parts.headers), parts.extensions, submit);
    match http.service.submit(call).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            let results: Vec<Value> = answer.results.iter().map(record_result).collect();
            (StatusCode::OK, Json(json!({"batch_id": answer.batch_id, "results": results}))).into_response()
        }
        Err(status) => refused(ErrorCode::of_grpc(status.code()), status.message().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_mirror_submit_request_and_malformed_ones_say_where() {
        let ok = parse(
            r#"{"batch_id":"b1","records":[{"kind":"household_registration","source_id":"HJ-1","revision":3,"op":"delete","payload":{"XM":"张三"}},{"kind":"k","source_id":7,"revision":1,"payload_base64":"MTIz","charset":"gbk"}]}"#.as_bytes(),
        )
        .unwrap();
        assert_eq!(ok.batch_id, "b1");
        assert_eq!(ok.records.len(), 2);
        assert_eq!((ok.records[0].kind.as_str(), ok.records[0].source_id.as_str()), ("household_registration", "HJ-1"));
        assert_eq!((ok.records[0].revision, ok.records[0].op), (3, hutong_proto::v1::Op::Delete as i32));
        assert_eq!(ok.records[0].payload, r#"{"XM":"张三"}"#.as_bytes());
        assert_eq!((ok.records[1].source_id.as_str(), ok.records[1].payload.as_slice()), ("7", &b"123"[..]));
        assert_eq!(ok.records[1].charset, "gbk");
        for (body, says) in [
            (&b"{oops"[..], "not JSON"),
            (b"[]", "must be an object"),
            (br#"{"records":{}}"#, "records must be an array"),
            (br#"{"records":[{"source_id":"a","payload":{}}]}"#, "records[0]: kind"),
            (
                br#"{"records":[{"kind":"k","source_id":"a","revision":1,"payload":{}},{"kind":"k","payload":{}}]}"#,
                "records[1]: source_id",
            ),
            (br#"{"records":[{"kind":"k","source_id":"a","revision":-1,"payload":{}}]}"#, "records[0]: revision"),
            (br#"{"records":[{"kind":"k","source_id":"a","payload":{}}]}"#, "records[0]: revision"),
            (br#"{"records":[{"kind":"k","source_id":"a","revision":1,"op":"MERGE","payload":{}}]}"#, "records[0]: op"),
        ] {
            let e = parse(body).unwrap_err();
            assert!(e.contains(says), "{e} should say {says}");
        }
    }
}

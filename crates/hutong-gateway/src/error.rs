//! One error vocabulary for every interface of the gateway: an [`ErrorCode`]
//! says what kind of failure a call met, mapped once to a gRPC code and once
//! to an HTTP status; [`GatewayError`] says why the gateway could not start.

use axum::http::StatusCode;
use hutong_bus::BusError;

/// What kind of failure a call met, whatever the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed (too many records, unknown mode, not JSON …).
    InvalidArgument,
    /// No identity.
    Unauthenticated,
    /// An identity the policy does not grant this (or Kafka refusing the gateway).
    PermissionDenied,
    /// No such subject, version, schema.
    NotFound,
    /// Too much in flight, the producer queue or the spool full: back off and retry.
    ResourceExhausted,
    /// Kafka unreachable: retry later (event ids make a retry safe).
    Unavailable,
    /// Another permanent refusal by Kafka (unknown topic …): operator action.
    FailedPrecondition,
    /// The request may not change this (the registry is read-only over HTTP).
    ReadOnly,
    /// A bug: a task failed.
    Internal,
}

impl ErrorCode {
    /// The gRPC code.
    pub fn grpc(self) -> tonic::Code {
        match self {
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::Unauthenticated => tonic::Code::Unauthenticated,
            Self::PermissionDenied | Self::ReadOnly => tonic::Code::PermissionDenied,
            Self::NotFound => tonic::Code::NotFound,
            Self::ResourceExhausted => tonic::Code::ResourceExhausted,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::FailedPrecondition => tonic::Code::FailedPrecondition,
            Self::Internal => tonic::Code::Internal,
        }
    }

    /// The HTTP status (the registry's REST API follows Confluent's: 422 for invalid input).
    pub fn http(self) -> StatusCode {
        match self {
            Self::InvalidArgument => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied | Self::ReadOnly => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code of a gRPC status (the HTTP face of an RPC answers with its [`Self::http`]).
    pub fn of_grpc(code: tonic::Code) -> Self {
        match code {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Self::InvalidArgument,
            tonic::Code::Unauthenticated => Self::Unauthenticated,
            tonic::Code::PermissionDenied => Self::PermissionDenied,
            tonic::Code::NotFound => Self::NotFound,
            tonic::Code::ResourceExhausted => Self::ResourceExhausted,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Aborted => Self::Unavailable,
            tonic::Code::FailedPrecondition => Self::FailedPrecondition,
            _ => Self::Internal,
        }
    }

    /// A gRPC status with this code.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.grpc(), message)
    }

    /// The code and message of bus trouble: the one mapping of [`BusError`].
    pub fn of_bus(e: &BusError) -> (Self, String) {
        match e {
            BusError::Unavailable { reason } => {
                (Self::Unavailable, format!("kafka unavailable, retry later: {reason}"))
            }
            BusError::QueueFull => (
                Self::ResourceExhausted,
                "the producer queue (or the spool) is full, retry after a short back-off".to_owned(),
            ),
            BusError::NotAuthorized { reason } => {
                (Self::PermissionDenied, format!("kafka refused the gateway: {reason}"))
            }
            BusError::RecordRefused { reason } | BusError::TopicRefused { reason } => {
                (Self::FailedPrecondition, format!("kafka refused the record: {reason}"))
            }
            BusError::TopicMismatch { .. } => (Self::FailedPrecondition, e.to_string()),
            BusError::Config { reason } => (Self::Internal, format!("kafka client configuration: {reason}")),
        }
    }

    /// The gRPC status of bus trouble.
    pub fn bus_status(e: &BusError) -> tonic::Status {
        let (code, message) = Self::of_bus(e);
        code.status(message)
    }
}

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is refused.
    #[error("configuration")]
    Config(#[from] crate::ConfigError),
    /// The standard, the adapters or the registry did not load.
    #[error("pipeline")]
    Pipeline(#[from] hutong_pipeline::PipelineError),
    /// Kafka could not be set up.
    #[error("kafka")]
    Bus(#[from] BusError),
    /// The spool could not be opened.
    #[error("spool")]
    Spool(#[from] hutong_bus::SpoolError),
    /// The spool holds messages for topics the plan no longer has (spooled by an earlier version).
    #[error(
        "the spool {} holds messages for topics this version does not write ({topics}); an earlier version spooled them: let it replay them, or move the spool file away, before upgrading",
        .path.display()
    )]
    StaleSpool {
        /// The spool file.
        path: std::path::PathBuf,
        /// `topic: count`, comma-separated.
        topics: String,
    },
    /// The policy file, the TLS files or the audit log could not be set up.
    #[error("security")]
    Security(#[from] crate::auth::SecurityError),
    /// A listener could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("server")]
    Transport(#[from] tonic::transport::Error),
    /// Server reflection could not be built.
    #[error("reflection")]
    Reflection(#[from] tonic_reflection::server::Error),
}

use std::path::PathBuf;

/// Why a pipeline could not be loaded (at start, or at a reload that is then refused).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The standard did not load.
    #[error("standard")]
    Standard(#[from] hutong_standard::StandardError),
    /// An adapter did not load or does not fit the standard.
    #[error("adapter")]
    Adapter(#[from] hutong_adapter::AdapterError),
    /// The schema registry is unreadable, or the `[privacy]` topics do not fit the standard.
    #[error("registry")]
    Registry(#[from] hutong_registry::RegistryError),
    /// A topic's schema (its view of the entity) is not registered.
    #[error(
        "topic {topic}: its schema is not registered as {subject} (run `hutong schema register --config <this config>`)"
    )]
    NotRegistered {
        /// The topic.
        topic: String,
        /// Its subject.
        subject: String,
    },
    /// The `[privacy]` topics do not fit the standard.
    #[error(transparent)]
    Views(#[from] hutong_standard::privacy::TopicViewError),
    /// `schemas/` cannot be watched for changes.
    #[error("watching {path}: {source}")]
    Watch {
        /// The folder.
        path: PathBuf,
        /// The file watcher's error.
        source: notify::Error,
    },
}

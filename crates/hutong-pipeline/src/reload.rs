//! Hot reload of the standard and the adapters: on file change or SIGHUP a
//! new pipeline is built from `schemas/`; only a set that loads and passes
//! every check replaces the working one (atomically), otherwise the error is
//! logged and kept in [`ReloadStatus`]. Requests hold the pipeline they
//! started with, so records in flight finish on their version.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use hutong_adapter::{Adapters, PseudonymKey};
use hutong_registry::Registry;
use hutong_standard::Standard;
use tracing::{error, info, warn};

use crate::{Pipeline, PipelineError, PipelineSettings};

/// What the last reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Generation of the pipeline in use (1 = the one loaded at start).
    pub generation: u64,
    /// The error of the last failed reload, if the last attempt failed.
    pub last_error: Option<String>,
}

/// The current pipeline and how to rebuild it.
#[derive(Debug)]
pub struct Reloader {
    current: ArcSwap<Pipeline>,
    schemas: PathBuf,
    key: PseudonymKey,
    settings: PipelineSettings,
    status: Mutex<ReloadStatus>,
}

impl Pipeline {
    /// Loads the standard, the adapters and the registry under `schemas`.
    pub fn load(schemas: &Path, key: PseudonymKey, settings: PipelineSettings) -> Result<Self, PipelineError> {
        let standard = Arc::new(Standard::load(schemas)?);
        let adapters = Arc::new(Adapters::load(&schemas.join("departments"), &standard)?);
        let registry = Arc::new(Registry::load(schemas)?);
        Self::new(standard, adapters, registry, key, settings)
    }
}

impl Reloader {
    /// Loads the first pipeline; fails when it does not load.
    pub fn new(schemas: PathBuf, key: PseudonymKey, settings: PipelineSettings) -> Result<Self, PipelineError> {
        let first = Pipeline::load(&schemas, key.clone(), settings.clone())?;
        Ok(Self {
            current: ArcSwap::from_pointee(first),
            schemas,
            key,
            settings,
            status: Mutex::new(ReloadStatus { generation: 1, last_error: None }),
        })
    }

    /// The pipeline in use now; hold it for the whole request.
    pub fn current(&self) -> Arc<Pipeline> {
        self.current.load_full()
    }

    /// The outcome of the last reload.
    pub fn status(&self) -> ReloadStatus {
        self.status.lock().expect("reload status lock").clone()
    }

    /// Rebuilds the pipeline from `schemas/`; swaps it in only if it loads.
    pub fn reload(&self) -> Result<u64, PipelineError> {
        let mut status = self.status.lock().expect("reload status lock");
        match Pipeline::load(&self.schemas, self.key.clone(), self.settings.clone()) {
            Ok(p) => {
                let adapters = p.adapters().iter().count();
                self.current.store(Arc::new(p));
                status.generation += 1;
                status.last_error = None;
                info!(generation = status.generation, adapters, "standard and adapters reloaded");
                Ok(status.generation)
            }
            Err(e) => {
                let message = error_chain(&e);
                error!(error = %message, generation = status.generation, "reload refused; keeping the working version");
                status.last_error = Some(message);
                Err(e)
            }
        }
    }

    /// Reloads on every change under `schemas/` (debounced) and on SIGHUP,
    /// until the returned guard is dropped. `after` runs after each
    /// successful reload (e.g. to create new topics).
    pub fn watch(
        self: &Arc<Self>,
        after: impl Fn(Arc<Pipeline>) + Send + Sync + 'static,
    ) -> Result<WatchGuard, PipelineError> {
        use notify::Watcher as _;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let fs_tx = tx.clone();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if ev.is_ok_and(|e| !e.kind.is_access()) {
                let _ = fs_tx.send(());
            }
        })
        .map_err(|source| PipelineError::Watch { path: self.schemas.clone(), source })?;
        watcher
            .watch(&self.schemas, notify::RecursiveMode::Recursive)
            .map_err(|source| PipelineError::Watch { path: self.schemas.clone(), source })?;
        #[cfg(unix)]
        let hup_task = {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                    warn!("cannot listen for SIGHUP");
                    return;
                };
                while hup.recv().await.is_some() {
                    info!("SIGHUP: reloading");
                    let _ = tx.send(());
                }
            })
        };
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Debounce: editors write files in several steps.
                while let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {}
                let this = Arc::clone(&this);
                let reloaded = tokio::task::spawn_blocking(move || this.reload().map(|_| this.current())).await;
                if let Ok(Ok(p)) = reloaded {
                    after(p);
                }
            }
        });
        Ok(WatchGuard {
            _watcher: watcher,
            task,
            #[cfg(unix)]
            hup_task,
        })
    }
}

/// Stops watching when dropped.
#[derive(Debug)]
pub struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
    #[cfg(unix)]
    hup_task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.task.abort();
        #[cfg(unix)]
        self.hup_task.abort();
    }
}

/// An error with its sources, `a: b: c` (what a refused reload reports).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

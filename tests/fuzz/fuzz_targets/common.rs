use std::{path::Path, sync::OnceLock};

use hutong_adapter::PseudonymKey;
use hutong_pipeline::{Pipeline, PipelineSettings};

/// The pipeline over the repository's schemas, loaded once.
pub fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| {
        let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let key = PseudonymKey::new(b"fuzz-key-0123456789ab".to_vec()).unwrap();
        Pipeline::load(&schemas, key, PipelineSettings::default()).unwrap()
    })
}

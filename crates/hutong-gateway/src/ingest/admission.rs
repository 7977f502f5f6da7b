//! Admission control: a request is admitted only if its records fit in the
//! gateway's and the department's in-flight budgets, so memory is bounded by
//! configuration and one department cannot starve the others.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{DeliveryConfig, ErrorCode};

/// The in-flight budgets.
#[derive(Debug)]
pub(crate) struct Admission {
    global: Arc<Semaphore>,
    per_department: Mutex<HashMap<String, Arc<Semaphore>>>,
    max: usize,
    max_per_department: usize,
}

/// Room held for a request's records until it is answered.
#[derive(Debug)]
pub(crate) struct Permits {
    _department: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

impl Admission {
    pub(crate) fn new(delivery: &DeliveryConfig) -> Self {
        Self {
            global: Arc::new(Semaphore::new(delivery.max_in_flight)),
            per_department: Mutex::default(),
            max: delivery.max_in_flight,
            max_per_department: delivery.max_in_flight_per_department,
        }
    }

    /// Records accepted and not yet answered, across departments.
    pub(crate) fn in_flight(&self) -> usize {
        self.max - self.global.available_permits()
    }

    /// Room for `n` records of `department`, or RESOURCE_EXHAUSTED at once (never an unbounded queue).
    pub(crate) fn admit(&self, department: &str, n: usize) -> Result<Permits, tonic::Status> {
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        let dept = {
            let mut map = self.per_department.lock().expect("per-department limits lock");
            Arc::clone(
                map.entry(department.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.max_per_department))),
            )
        };
        let busy = |scope: &str| {
            ErrorCode::ResourceExhausted
                .status(format!("{scope} has too many records in flight; retry after a short back-off"))
        };
        let d = dept.try_acquire_many_owned(n32).map_err(|_| busy(&format!("department {department}")))?;
        let g = Arc::clone(&self.global).try_acquire_many_owned(n32).map_err(|_| busy("the gateway"))?;
        Ok(Permits { _department: d, _global: g })
    }
}

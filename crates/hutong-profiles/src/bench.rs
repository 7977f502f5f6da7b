//! `hutong profiles bench`: the store's side of the profile service measured without Kafka.
//! Synthetic facts of one community (per person: 公安's registration, 卫健's health record,
//! 民政's tags, and 公安's household fact of the member) applied in batches as the consumer
//! applies them; then queries with the persons loaded: a person by citizen ID (normalise, key,
//! read) and the people of a grid.

use std::time::{Duration, Instant};

use hutong_adapter::PseudonymKey;
use serde_json::json;

use crate::{
    ProfilesError,
    merge::{Fact, Source},
    rules::Rules,
    store::{Store, StoreUrl},
};

/// What was measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// The store (without a password).
    pub store: String,
    /// Persons loaded.
    pub persons: usize,
    /// Facts applied.
    pub facts: usize,
    /// Facts per transaction.
    pub batch: usize,
    /// Wall time of applying every fact (a rebuild from scratch), seconds.
    pub apply_seconds: f64,
    /// Facts applied per second.
    pub facts_per_second: f64,
    /// Person by citizen ID: p50, p99, max, µs.
    pub person_by_citizen_id_us: [u64; 3],
    /// People of a grid (with their profiles, at most 100): p50, p99, max, µs.
    pub people_of_grid_us: [u64; 3],
    /// Persons per grid.
    pub persons_per_grid: usize,
}

/// A valid citizen ID for person `i` (GB 11643 check character), born in 西湖区 between
/// 1940 and 2005.
fn citizen_id(i: usize) -> String {
    let year = 1940 + (i % 66);
    let day = 1 + (i / 66) % 28;
    let seq = (i / (66 * 28)) % 1000;
    let body = format!("330106{year}{:02}{day:02}{seq:03}", 1 + (i % 12));
    let check = hutong_standard::checks::gb11643_check_char(&body).unwrap_or('0');
    format!("{body}{check}")
}

fn source(department: &str, kind: &str, sid: String, revision: i64) -> Source {
    Source {
        department: department.to_owned(),
        kind: kind.to_owned(),
        ce_id: format!("{department}:{kind}:{sid}:{revision}"),
        source_id: sid,
        revision,
        time: "2024-05-20T00:00:00.000Z".to_owned(),
    }
}

/// The four facts of person `i` (keys made with `key`).
fn facts_of(i: usize, key: &PseudonymKey, grids: usize) -> Vec<Fact> {
    let id = citizen_id(i);
    let p = key.pseudonym(&id);
    let grid = format!("330106004053{:03}", i % grids);
    let household = format!("gongan:33010600405{:07}", i / 3);
    let fact = |entity: &str, k: &str, source, data| Fact {
        entity: entity.into(),
        entity_key: k.into(),
        source,
        data: Some(data),
    };
    vec![
        fact(
            "person",
            &p,
            source("gongan", "household_registration", format!("g{i}"), 1),
            json!({"person_key": p, "name": format!("居民{i}"), "sex": if i.is_multiple_of(2) { "1" } else { "2" },
                   "birth_date": format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]), "household_key": household}),
        ),
        fact(
            "person",
            &p,
            source("weijian", "elderly_health", format!("w{i}"), 1),
            json!({"person_key": p, "name": format!("居民{i}"), "phone": format!("1380000{:04}", i % 10_000)}),
        ),
        fact(
            "person",
            &p,
            source("minzheng", "elderly_care", format!("m{i}"), 1),
            json!({"person_key": p, "name": format!("居民{i}"), "grid_code": grid,
                   "special_population": [{"tag": "0101", "source_department": "minzheng"}]}),
        ),
        fact(
            "household",
            &household,
            source("gongan", "household_registration", format!("g{i}"), 1),
            json!({"household_key": household, "members": [{"person_key": p, "relation": if i.is_multiple_of(3) { "02" } else { "10" }}]}),
        ),
    ]
}

fn percentiles(mut samples: Vec<Duration>) -> [u64; 3] {
    samples.sort_unstable();
    let at = |q: f64| samples.get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1)));
    let us = |d: Option<&Duration>| d.map_or(0, |d| d.as_micros() as u64);
    [us(at(0.5)), us(at(0.99)), us(samples.last())]
}

/// Loads `persons` persons (4 facts each) into a fresh store at `url` in batches of `batch`,
/// then times `queries` lookups of each kind. `progress` is told how many facts are in.
pub fn run(
    url: &StoreUrl,
    rules: &Rules,
    persons: usize,
    batch: usize,
    queries: usize,
    progress: &dyn Fn(usize, usize),
) -> Result<BenchReport, ProfilesError> {
    let key =
        PseudonymKey::new(b"bench-key-0123456789abcdef".to_vec()).ok_or_else(|| ProfilesError::Config("key".into()))?;
    let mut store = Store::open(url)?;
    if !store.counts()?.is_empty() {
        return Err(ProfilesError::Config(format!("{url} is not empty: the benchmark needs a fresh store")));
    }
    let grids = (persons / 2_000).max(1);
    let total = persons * 4;
    let started = Instant::now();
    let mut pending = Vec::with_capacity(batch + 4);
    let mut done = 0;
    for i in 0..persons {
        pending.extend(facts_of(i, &key, grids));
        if pending.len() >= batch || i + 1 == persons {
            store.apply(&pending, rules)?;
            done += pending.len();
            pending.clear();
            progress(done, total);
        }
    }
    let apply = started.elapsed();
    let mut by_id = Vec::with_capacity(queries);
    let mut by_grid = Vec::with_capacity(queries);
    for q in 0..queries {
        let i = (q * 7919) % persons;
        let t = Instant::now();
        let id =
            hutong_pipeline::normalise_citizen_id(&citizen_id(i)).ok_or_else(|| ProfilesError::Config("id".into()))?;
        let found = store.profile("person", &key.pseudonym(&id))?;
        by_id.push(t.elapsed());
        if found.is_none() {
            return Err(ProfilesError::Config(format!("person {i} not found")));
        }
        let t = Instant::now();
        let (people, _) = store.people_of("grid", &format!("330106004053{:03}", q % grids), 100)?;
        by_grid.push(t.elapsed());
        if people.is_empty() {
            return Err(ProfilesError::Config(format!("grid {} is empty", q % grids)));
        }
    }
    Ok(BenchReport {
        store: url.to_string(),
        persons,
        facts: total,
        batch,
        apply_seconds: apply.as_secs_f64(),
        facts_per_second: total as f64 / apply.as_secs_f64(),
        person_by_citizen_id_us: percentiles(by_id),
        people_of_grid_us: percentiles(by_grid),
        persons_per_grid: persons / grids,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn synthetic_citizen_ids_are_valid_and_distinct() {
        let ids: std::collections::BTreeSet<String> = (0..5000).map(super::citizen_id).collect();
        assert_eq!(ids.len(), 5000);
        assert!(ids.iter().all(|id| hutong_standard::checks::check_gb11643(id).is_ok()));
    }
}

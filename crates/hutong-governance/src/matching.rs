//! 供需对接: an open service request (群众需求) ranked against the service resources
//! (公益服务资源), under the rules of `schemas/governance/matching.toml`:
//!
//! - **category**: the request's service category offered by the resource (exact), or one of
//!   the same group of the service-category list; none of either excludes the resource;
//! - **coverage**: the resource serves the request's grid, a division containing it, or a
//!   point within its radius of the request's location; none of these excludes it (a resource
//!   that states no area and no place serves everyone);
//! - **target groups**: a resource meant for some groups (special-population codes) takes a
//!   requester in one of them (their tags come from the person's 一人一档 profile), and
//!   excludes the others;
//! - **capacity and opening**: a resource that is not `available`, has no places left, or is
//!   not offered on the day the service is needed (validity, days of the week) is excluded.
//!
//! Each candidate carries its score and the reasons, in words.

use std::{collections::BTreeSet, path::Path};

use chrono::{DateTime, FixedOffset, NaiveDate};
use hutong_standard::Standard;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{GovernanceError, beijing, check_codes, read_rules, within};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct MatchingFile {
    version: u32,
    rules_version: String,
    open_statuses: Vec<String>,
    matched_statuses: Vec<String>,
    max_candidates: usize,
    default_radius_m: f64,
    weights: Weights,
}

/// Points per criterion.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Weights {
    /// The resource offers the requested category.
    pub category_exact: u32,
    /// It offers one of the same group.
    pub category_group: u32,
    /// It serves the request's grid.
    pub coverage_grid: u32,
    /// It serves a division containing the request's.
    pub coverage_division: u32,
    /// The request's location is within its radius (scaled by closeness).
    pub coverage_distance: u32,
    /// The requester is in one of its target groups.
    pub target_group: u32,
    /// It has places left.
    pub available: u32,
}

/// The matching rules.
#[derive(Debug, Clone)]
pub struct MatchingRules {
    /// The rules' own version.
    pub rules_version: String,
    /// Request statuses that still need a match.
    pub open_statuses: BTreeSet<String>,
    /// Request statuses that mean it was matched (已对接/已完成): the time-to-match ends there.
    pub matched_statuses: BTreeSet<String>,
    /// Candidates kept per request.
    pub max_candidates: usize,
    /// Radius of a resource that states none, metres.
    pub default_radius_m: f64,
    /// Points per criterion.
    pub weights: Weights,
}

/// One resource proposed for a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The resource.
    pub resource_key: String,
    /// Its name.
    pub name: String,
    /// Its score.
    pub score: u32,
    /// Why, criterion by criterion.
    pub reasons: Vec<String>,
    /// Distance from the request's location, metres, when both have one.
    pub distance_m: Option<u32>,
}

impl MatchingRules {
    /// Reads `matching.toml` and checks its statuses against the service-request-status list.
    pub fn load(path: &Path, standard: &Standard) -> Result<Self, GovernanceError> {
        let f: MatchingFile = read_rules(path)?;
        if f.version != 1 {
            return Err(GovernanceError::Rules {
                path: path.to_owned(),
                message: format!("version {}: this Hutong reads matching rules of version 1", f.version),
            });
        }
        check_codes(path, standard, "service-request-status", "open-statuses", &f.open_statuses)?;
        check_codes(path, standard, "service-request-status", "matched-statuses", &f.matched_statuses)?;
        Ok(Self {
            rules_version: f.rules_version,
            open_statuses: f.open_statuses.into_iter().collect(),
            matched_statuses: f.matched_statuses.into_iter().collect(),
            max_candidates: f.max_candidates.max(1),
            default_radius_m: f.default_radius_m,
            weights: f.weights,
        })
    }

    /// Whether `request` (a service_request record) still needs a match.
    pub fn is_open(&self, request: &Value) -> bool {
        request["status"].as_str().is_some_and(|s| self.open_statuses.contains(s))
    }

    /// The best resources for `request`, whose requester has the special-population `tags`,
    /// among `resources` (service_resource records), best first.
    pub fn candidates(&self, request: &Value, tags: &[String], resources: &[Value]) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = resources.iter().filter_map(|r| self.score(request, tags, r)).collect();
        out.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.resource_key.cmp(&b.resource_key)));
        out.truncate(self.max_candidates);
        out
    }

    /// How well `resource` fits `request`, or `None` when it cannot serve it.
    pub fn score(&self, request: &Value, tags: &[String], resource: &Value) -> Option<Candidate> {
        let w = &self.weights;
        let mut score = 0;
        let mut reasons = Vec::new();
        // Category.
        let wanted = request["category"].as_str()?;
        let offered: Vec<&str> = resource["categories"].as_array()?.iter().filter_map(Value::as_str).collect();
        if offered.contains(&wanted) {
            score += w.category_exact;
            reasons.push(format!("offers {wanted}"));
        } else if let Some(o) = offered.iter().find(|o| o.len() >= 2 && wanted.len() >= 2 && o[..2] == wanted[..2]) {
            score += w.category_group;
            reasons.push(format!("offers {o}, of the same group as {wanted}"));
        } else {
            return None;
        }
        // Coverage.
        let area = &request["service_area"];
        let grid = area["grid_code"].as_str();
        let division = area["division_code"].as_str().or(grid.map(|g| &g[..g.len().min(12)]));
        let served = &resource["service_area"];
        let grids: Vec<&str> =
            served["grid_codes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let divisions: Vec<&str> =
            served["division_codes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let distance = distance_m(&request["location"], &resource["location"]);
        let radius = served["radius_m"].as_f64().unwrap_or(self.default_radius_m);
        let mut covered = false;
        if let Some(g) = grid.filter(|g| grids.contains(g)) {
            score += w.coverage_grid;
            reasons.push(format!("serves grid {g}"));
            covered = true;
        } else if let Some(d) =
            divisions.iter().find(|d| division.is_some_and(|x| within(x, d)) || grid.is_some_and(|g| within(g, d)))
        {
            score += w.coverage_division;
            reasons.push(format!("serves division {d}"));
            covered = true;
        }
        if let Some(m) = distance.filter(|m| *m <= radius) {
            let closeness = (1.0 - m / radius).clamp(0.0, 1.0);
            score += ((f64::from(w.coverage_distance) * closeness).round() as u32).max(1);
            reasons.push(format!("{m:.0} m away (radius {radius:.0} m)"));
            covered = true;
        }
        if !covered {
            let states_area = !grids.is_empty() || !divisions.is_empty() || resource["location"].is_object();
            if states_area {
                return None;
            }
            reasons.push("serves everyone (no area stated)".into());
        }
        // Target groups.
        if let Some(groups) = resource["target_groups"].as_array().filter(|g| !g.is_empty()) {
            let groups: Vec<&str> = groups.iter().filter_map(Value::as_str).collect();
            let hit = tags.iter().find(|t| groups.iter().any(|g| within(t, g)))?;
            score += w.target_group;
            reasons.push(format!("meant for {hit}'s group"));
        }
        // Capacity and opening.
        if resource["status"].as_str() != Some("available") {
            return None;
        }
        match resource["capacity"]["available"].as_i64() {
            Some(0) => return None,
            Some(n) => {
                score += w.available;
                reasons.push(format!("{n} left"));
            }
            None => {}
        }
        let needed = day_of(request["needed_by"].as_str()).or(day_of(request["requested_at"].as_str()));
        let availability = &resource["availability"];
        let from = availability["valid_from"].as_str().and_then(|d| d.parse::<NaiveDate>().ok());
        let until = availability["valid_until"].as_str().and_then(|d| d.parse::<NaiveDate>().ok());
        if let Some(day) = needed
            && (from.is_some_and(|f| day < f) || until.is_some_and(|u| day > u))
        {
            return None;
        }
        // A stated day of need (needed_by) on a day of the week the service does not run.
        let weekdays: Vec<u64> =
            availability["weekdays"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
        if let Some(day) = day_of(request["needed_by"].as_str())
            && !weekdays.is_empty()
            && !weekdays.contains(&u64::from(chrono::Datelike::weekday(&day).number_from_monday()))
        {
            return None;
        }
        Some(Candidate {
            resource_key: resource["resource_key"].as_str()?.to_owned(),
            name: resource["name"].as_str().unwrap_or_default().to_owned(),
            score,
            reasons,
            distance_m: distance.map(|m| m.round() as u32),
        })
    }
}

/// The Beijing-time day of an RFC 3339 time.
fn day_of(t: Option<&str>) -> Option<NaiveDate> {
    DateTime::parse_from_rfc3339(t?).ok().map(|t: DateTime<FixedOffset>| t.with_timezone(&beijing()).date_naive())
}

/// Great-circle distance between two WGS-84 points (`{lon, lat}`), metres.
pub fn distance_m(a: &Value, b: &Value) -> Option<f64> {
    let (lon1, lat1, lon2, lat2) = (a["lon"].as_f64()?, a["lat"].as_f64()?, b["lon"].as_f64()?, b["lat"].as_f64()?);
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    Some(2.0 * 6_371_008.8 * h.sqrt().asin())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules() -> MatchingRules {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let standard = Standard::load(&root).expect("standard");
        MatchingRules::load(&root.join("governance/matching.toml"), &standard).expect("matching")
    }

    fn resource(key: &str, categories: &[&str], extra: Value) -> Value {
        let mut r = json!({"resource_key": key, "name": key, "categories": categories, "status": "available"});
        for (k, v) in extra.as_object().into_iter().flatten() {
            r[k] = v.clone();
        }
        r
    }

    #[test]
    fn resources_are_ranked_by_area_distance_and_target_group() {
        let rules = rules();
        let request = json!({
            "request_key": "rexian:Q1", "category": "0201", "title": "独居老人助餐", "status": "submitted",
            "requested_at": "2026-11-10T09:00:00+08:00",
            "service_area": {"grid_code": "330106004053001"},
            "location": {"lon": 120.1433, "lat": 30.2739, "datum": "WGS-84"},
        });
        let canteen = resource(
            "minzheng:A",
            &["0201"],
            json!({"service_area": {"grid_codes": ["330106004053001"]}, "target_groups": ["01"], "capacity": {"total": 80, "available": 12, "unit": "person"}}),
        );
        let street =
            resource("minzheng:B", &["0201", "0204"], json!({"service_area": {"division_codes": ["330106004"]}}));
        let near = resource(
            "minzheng:C",
            &["0203"],
            json!({"location": {"lon": 120.1440, "lat": 30.2745, "datum": "WGS-84"}}),
        );
        let far =
            resource("minzheng:D", &["0201"], json!({"location": {"lon": 120.30, "lat": 30.40, "datum": "WGS-84"}}));
        let full = resource(
            "minzheng:E",
            &["0201"],
            json!({"service_area": {"grid_codes": ["330106004053001"]}, "capacity": {"total": 30, "available": 0, "unit": "bed"}}),
        );
        let kids = resource(
            "minzheng:F",
            &["0201"],
            json!({"service_area": {"grid_codes": ["330106004053001"]}, "target_groups": ["02"]}),
        );
        let legal = resource("sifa:G", &["0801"], json!({}));
        let all = [canteen, street, near, far, full, kids, legal];
        let elderly = ["0101".to_owned()];
        let found: Vec<String> =
            rules.candidates(&request, &elderly, &all).into_iter().map(|c| c.resource_key).collect();
        // By area (grid, then division), by distance (another category of the group), never the
        // far, full, children's or legal ones.
        assert_eq!(found[..3.min(found.len())], ["minzheng:A", "minzheng:B", "minzheng:C"][..3.min(found.len())]);
        assert!(!found.iter().any(|k| ["minzheng:D", "minzheng:E", "minzheng:F", "sifa:G"].contains(&k.as_str())));
        // A requester in no target group loses the canteen meant for the elderly.
        let none = rules.candidates(&request, &[], &all);
        assert!(none.iter().all(|c| c.resource_key != "minzheng:A"), "{none:?}");
        // The distance is measured on the WGS-84 sphere: about 95 m.
        let c = rules.score(&request, &[], &all[2]).expect("near");
        assert!(c.distance_m.is_some_and(|d| (80..=110).contains(&d)), "{c:?}");
        // Offered only later than needed: excluded.
        let later = resource("minzheng:H", &["0201"], json!({"availability": {"valid_from": "2027-01-01"}}));
        assert_eq!(rules.score(&request, &[], &later), None);
        // Needed on a Saturday (14 November 2026) from a service that runs on weekdays: excluded.
        let weekdays = resource("minzheng:I", &["0201"], json!({"availability": {"weekdays": [1, 2, 3, 4, 5]}}));
        let mut saturday = request.clone();
        saturday["needed_by"] = json!("2026-11-14T11:00:00+08:00");
        assert_eq!(rules.score(&saturday, &[], &weekdays), None);
        assert!(rules.score(&request, &[], &weekdays).is_some(), "no day of need stated: not excluded");
    }
}

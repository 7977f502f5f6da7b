//! `hutong.v1.Access`: the catalogue as the caller may use it, access requests and their
//! approval, grants, usage and 数据异议; and [`Sharing`], what the query services enforce for a
//! consumer identity: only the fields its active grants cover, the next call after an expiry or
//! a revocation already refused. Every step is in the audit trail.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use chrono::{Days, NaiveDate};
use hutong_config::Principal;
use hutong_gateway::Guard;
use hutong_governance::Calendar;
use hutong_proto::v1::{
    AccessReply, CatalogReply, DecideRequest, FileObjectionRequest, GetCatalogRequest, ListObjectionsReply,
    ListObjectionsRequest, ListRequestsReply, ListRequestsRequest, ListUsageReply, ListUsageRequest, ObjectionReply,
    RequestAccessRequest, ResolveObjectionRequest, RevokeRequest, access_server,
};
use hutong_sharing::{Catalog, Grant, GrantStatus, granted_fields};
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

use crate::{
    access::day_of,
    governance::Clock,
    service::{Queries, audit_read},
};

/// Working days a provider has to answer an access request (有条件共享: 10 working days).
pub const REPLY_WORKING_DAYS: u32 = 10;
/// Working days a source department has to answer an objection.
pub const OBJECTION_WORKING_DAYS: u32 = 5;

/// The catalogue, the calendar and the clock the access rules are applied with, and the
/// per-consumer limits.
pub struct Sharing {
    /// The catalogue.
    pub catalog: Catalog,
    /// Working days.
    pub calendar: Arc<Calendar>,
    /// The clock (fixed in replays and tests).
    pub clock: Clock,
    /// Rate limits and the misuse watch.
    pub limits: Limits,
}

/// Per-consumer limits: a rate limit on calls (a token bucket per consumer identity), and a
/// watch on how many distinct profiles each consumer reads in an hour.
pub struct Limits {
    rate: Option<governor::DefaultKeyedRateLimiter<String>>,
    profiles_per_hour: u32,
    read: std::sync::Mutex<BTreeMap<String, HourRead>>,
}

/// What one consumer read in one hour: the hour (Unix time / 3600), the profiles read in it,
/// whether it was signalled.
type HourRead = (i64, BTreeSet<String>, bool);

impl Limits {
    /// `rate_per_second` calls a second with `burst` at once (0: no limit); a misuse signal when
    /// a consumer reads more than `profiles_per_hour` distinct profiles in an hour (0: never).
    pub fn new(rate_per_second: u32, burst: u32, profiles_per_hour: u32) -> Self {
        let rate = std::num::NonZeroU32::new(rate_per_second).map(|r| {
            let burst = std::num::NonZeroU32::new(burst.max(rate_per_second)).unwrap_or(r);
            governor::RateLimiter::keyed(governor::Quota::per_second(r).allow_burst(burst))
        });
        Self { rate, profiles_per_hour, read: std::sync::Mutex::default() }
    }

    /// Refuses a call of `consumer` above its rate.
    pub fn admit(&self, consumer: &str) -> Result<(), Status> {
        match &self.rate {
            Some(limiter) if limiter.check_key(&consumer.to_owned()).is_err() => {
                Err(Status::resource_exhausted(format!(
                    "consumer {consumer} calls faster than its limit ([sharing] rate-per-second, burst): slow down"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Counts the profiles `consumer` read at `hour`; the count when it crossed the hourly
    /// limit now (once an hour).
    pub fn note_reads<'k>(&self, consumer: &str, hour: i64, keys: impl IntoIterator<Item = &'k str>) -> Option<usize> {
        if self.profiles_per_hour == 0 {
            return None;
        }
        let mut read = self.read.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = read.entry(consumer.to_owned()).or_insert_with(|| (hour, BTreeSet::new(), false));
        if entry.0 != hour {
            *entry = (hour, BTreeSet::new(), false);
        }
        if entry.2 {
            return None;
        }
        entry.1.extend(keys.into_iter().map(str::to_owned));
        let n = entry.1.len();
        if n > self.profiles_per_hour as usize {
            // Signalled: the keys are not kept any longer (memory stays bounded by the limit).
            *entry = (hour, BTreeSet::new(), true);
            return Some(n);
        }
        None
    }
}

/// What a consumer's active grants let it see: per source (department, kind), the resource,
/// the granted `entity.field`s and the 网格 they hold in (grants of one resource together: the
/// union of their fields and grids; one without grids holds anywhere).
#[derive(Debug, Default, Clone)]
pub struct Allowed {
    by_source: BTreeMap<(String, String), Scope>,
    resources: BTreeSet<String>,
}

#[derive(Debug, Default, Clone)]
struct Scope {
    resource: String,
    fields: BTreeSet<String>,
    /// `None`: anywhere.
    grids: Option<BTreeSet<String>>,
}

impl Scope {
    fn holds_in(&self, grid: Option<&str>) -> bool {
        match (&self.grids, grid) {
            (None, _) => true,
            (Some(gs), Some(g)) => gs.contains(g),
            (Some(_), None) => false,
        }
    }
}

impl Allowed {
    /// Whether a grant covers resource `id` at all.
    pub fn has(&self, id: &str) -> bool {
        self.resources.contains(id)
    }

    /// Whether any grant covers a field of `entity`.
    pub fn any_of(&self, entity: &str) -> bool {
        let prefix = format!("{entity}.");
        self.by_source.values().any(|s| s.fields.iter().any(|f| f.starts_with(&prefix)))
    }

    /// Whether some grant about `entity` holds in `grid`.
    pub fn holds_in(&self, entity: &str, grid: &str) -> bool {
        let prefix = format!("{entity}.");
        self.by_source.values().any(|s| s.fields.iter().any(|f| f.starts_with(&prefix)) && s.holds_in(Some(grid)))
    }

    fn resource_for<'a>(&'a self, source: &Value, item: &str, grid: Option<&str>) -> Option<&'a str> {
        let key = (source["department"].as_str()?.to_owned(), source["kind"].as_str()?.to_owned());
        let scope = self.by_source.get(&key)?;
        (scope.fields.contains(item) && scope.holds_in(grid)).then_some(scope.resource.as_str())
    }

    /// `doc` (a profile) cut to what the grants cover: every other field withheld, conflicts and
    /// checks (for the departments) left out. The resources it drew on, with one record each.
    pub fn filter(&self, doc: &mut Value) -> BTreeMap<String, u64> {
        let entity = doc["entity"].as_str().unwrap_or_default().to_owned();
        let key_field = format!("{entity}_key");
        // The 网格 of the profile: a grid's own key, else the grid its record names.
        let grid = if entity == "grid" { doc["key"].as_str() } else { doc["record"]["grid_code"].as_str() };
        let grid = grid.map(str::to_owned);
        let grid = grid.as_deref();
        let mut used = BTreeMap::new();
        let names: Vec<String> = doc["fields"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        for name in names {
            let item = format!("{entity}.{name}");
            let field = &mut doc["fields"][&name];
            let kept = if let Some(elements) = field.get_mut("elements").and_then(Value::as_array_mut) {
                elements.retain(|e| {
                    e["sources"].as_array().into_iter().flatten().any(|s| self.resource_for(s, &item, grid).is_some())
                });
                for e in elements.iter_mut() {
                    if let Some(sources) = e["sources"].as_array_mut() {
                        sources.retain(|s| self.resource_for(s, &item, grid).is_some());
                        for s in sources.iter() {
                            if let Some(r) = self.resource_for(s, &item, grid) {
                                used.insert(r.to_owned(), 1);
                            }
                        }
                    }
                }
                let values: Vec<Value> = elements.iter().map(|e| e["value"].clone()).collect();
                (!values.is_empty()).then_some(Value::Array(values))
            } else {
                self.resource_for(&field["source"], &item, grid).map(|r| {
                    used.insert(r.to_owned(), 1);
                    doc["record"][&name].clone()
                })
            };
            match kept {
                Some(v) => {
                    if let Some(record) = doc["record"].as_object_mut()
                        && record.contains_key(&name)
                    {
                        record.insert(name.clone(), v);
                    }
                }
                None if name != key_field => {
                    if let Some(record) = doc["record"].as_object_mut() {
                        record.remove(&name);
                    }
                    doc["fields"][&name] =
                        json!({"withheld": "未授权: no active grant of yours covers this field's source"});
                }
                None => {}
            }
        }
        if let Some(d) = doc.as_object_mut() {
            d.remove("conflicts");
            d.remove("checks");
        }
        if let Some(sources) = doc["sources"].as_array_mut() {
            sources.retain(|s| {
                let key = (
                    s["department"].as_str().unwrap_or_default().to_owned(),
                    s["kind"].as_str().unwrap_or_default().to_owned(),
                );
                self.by_source.contains_key(&key)
            });
        }
        used
    }
}

impl Sharing {
    /// Today, Beijing time.
    pub fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    fn now(&self) -> String {
        self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }

    /// What `consumer`'s grants active today cover (read on every call: an expiry or a
    /// revocation holds from the next call on).
    pub async fn allowed(&self, queries: &Queries, consumer: &str) -> Result<Allowed, Status> {
        self.limits.admit(consumer)?;
        let mut allowed = Allowed::default();
        for g in self.active_grants(queries, consumer).await? {
            allowed.resources.insert(g.resource.clone());
            if let Some(r) = self.catalog.get(&g.resource)
                && let Some((department, kind)) = r.id.split_once('.')
            {
                let entry = allowed.by_source.entry((department.to_owned(), kind.to_owned())).or_insert_with(|| {
                    Scope { resource: r.id.clone(), fields: BTreeSet::new(), grids: Some(BTreeSet::new()) }
                });
                entry.fields.extend(g.fields.iter().cloned());
                entry.grids = match (entry.grids.take(), g.grids.is_empty()) {
                    (_, true) => None,
                    (Some(mut gs), false) => {
                        gs.extend(g.grids.iter().cloned());
                        Some(gs)
                    }
                    (None, false) => None,
                };
            }
        }
        Ok(allowed)
    }

    /// Refuses a consumer without an active grant of `resource` (departments and admins pass).
    pub async fn require<T>(
        &self,
        guard: &Guard,
        queries: &Queries,
        request: &Request<T>,
        who: &Principal,
        operation: &'static str,
        resource: &str,
    ) -> Result<(), Status> {
        let Principal::Consumer(c) = who else { return Ok(()) };
        if self.allowed(queries, c).await?.has(resource) {
            let used = BTreeMap::from([(resource.to_owned(), 1)]);
            let (c, now) = (c.clone(), self.now());
            queries.run(move |s| s.record_usage(&c, &used, &now)).await?;
            return Ok(());
        }
        audit_read(guard, request, who, operation, json!({"resource": resource}), "PermissionDenied");
        Err(not_granted(c, resource))
    }

    /// Watches what `who` (a consumer) read: the profiles `keys`. Past the hourly limit a misuse
    /// signal is kept in the store (shown to admins and to the providers of its grants),
    /// audited and logged (the consumer and the count, nothing read).
    pub async fn watch<T>(
        &self,
        guard: &Guard,
        queries: &Queries,
        request: &Request<T>,
        who: &Principal,
        keys: &[&str],
    ) -> Result<(), Status> {
        let Principal::Consumer(c) = who else { return Ok(()) };
        let hour = self.clock.now().timestamp().div_euclid(3600);
        let Some(n) = self.limits.note_reads(c, hour, keys.iter().copied()) else { return Ok(()) };
        let detail = format!("{n} distinct profiles read within one hour (limit {})", self.limits.profiles_per_hour);
        self.signal(guard, queries, request, who, "enumeration", detail).await
    }

    /// Raises a misuse signal about `who` (a consumer): kept in the store (shown to admins and
    /// to the providers of its grants), audited and logged (the consumer and what, nothing read).
    pub async fn signal<T>(
        &self,
        guard: &Guard,
        queries: &Queries,
        request: &Request<T>,
        who: &Principal,
        kind: &str,
        detail: String,
    ) -> Result<(), Status> {
        let Principal::Consumer(c) = who else { return Ok(()) };
        let resources: Vec<String> = self.active_grants(queries, c).await?.into_iter().map(|g| g.resource).collect();
        let signal = json!({"consumer": c, "signal": kind, "at": self.now(), "detail": detail, "resources": resources});
        tracing::warn!(consumer = %c, signal = kind, "misuse signal: a consumer reads beyond its grants or purpose");
        audit_read(guard, request, who, "MisuseSignal", signal.clone(), "Signalled");
        queries.run(move |s| s.add_signal(&signal)).await
    }

    /// `consumer`'s grants active today.
    async fn active_grants(&self, queries: &Queries, consumer: &str) -> Result<Vec<Grant>, Status> {
        let c = consumer.to_owned();
        let today = self.today();
        let grants = queries.run(move |s| s.grants_of(&c)).await?;
        Ok(grants.into_iter().filter(|g| g.active(today)).collect())
    }

    /// Counts a consumer's answer on the resources it drew on.
    pub async fn count(&self, queries: &Queries, who: &Principal, used: BTreeMap<String, u64>) -> Result<(), Status> {
        let Principal::Consumer(c) = who else { return Ok(()) };
        if used.is_empty() {
            return Ok(());
        }
        let (c, now) = (c.clone(), self.now());
        queries.run(move |s| s.record_usage(&c, &used, &now)).await
    }
}

/// The refusal of a consumer without an active grant of `resource`.
pub fn not_granted(consumer: &str, resource: &str) -> Status {
    Status::permission_denied(format!(
        "consumer {consumer} has no active grant of {resource}: request it (hutong access request --resource {resource} …) \
         and have it approved"
    ))
}

/// The refusal of a consumer whose grants cover none of `what`.
pub fn nothing_granted(consumer: &str, what: &str) -> Status {
    Status::permission_denied(format!(
        "consumer {consumer} has no active grant covering {what}: see what you may request with `hutong access catalog`, \
         then `hutong access request --resource …`"
    ))
}

/// Marks the fields of `doc` whose source fact has an open objection (`异议` on the field:
/// the objections' ids), and lists each objection once with the fields it marks.
pub fn mark_objections(doc: &mut Value, open: &BTreeMap<String, Vec<Value>>) {
    if open.is_empty() {
        return;
    }
    let mut listed: BTreeMap<String, Value> = BTreeMap::new();
    let names: Vec<String> = doc["fields"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    for name in names {
        let mut on: Vec<&Value> =
            field_ce_ids(&doc["fields"][&name]).iter().flat_map(|c| open.get(c).into_iter().flatten()).collect();
        on.dedup_by_key(|o| o["id"].clone());
        if on.is_empty() {
            continue;
        }
        let ids: Vec<Value> = on.iter().map(|o| o["id"].clone()).collect();
        for o in on {
            let id = o["id"].as_str().unwrap_or_default().to_owned();
            let entry = listed.entry(id).or_insert_with(|| {
                json!({"id": o["id"], "pointer": o["pointer"], "reason": o["reason"], "status": o["status"],
                       "department": o["department"], "fields": []})
            });
            if let Some(f) = entry["fields"].as_array_mut() {
                f.push(name.clone().into());
            }
        }
        doc["fields"][&name]["异议"] = Value::Array(ids);
    }
    if !listed.is_empty() {
        doc["objections"] = Value::Array(listed.into_values().collect());
    }
}

/// The event ids a profile's fields came from.
pub fn ce_ids(doc: &Value) -> BTreeSet<String> {
    doc["fields"].as_object().into_iter().flatten().flat_map(|(_, f)| field_ce_ids(f)).collect()
}

fn field_ce_ids(field: &Value) -> Vec<String> {
    let mut out: Vec<String> = field["source"]["ce_id"].as_str().map(str::to_owned).into_iter().collect();
    for e in field["elements"].as_array().into_iter().flatten() {
        out.extend(
            e["sources"].as_array().into_iter().flatten().filter_map(|s| s["ce_id"].as_str().map(str::to_owned)),
        );
    }
    out
}

/// The Access service.
pub struct AccessService {
    queries: Queries,
    guard: Arc<Guard>,
    sharing: Arc<Sharing>,
}

impl AccessService {
    /// Serves `sharing`'s rules over the store at `queries` to callers `guard` lets in.
    pub fn new(queries: Queries, guard: Arc<Guard>, sharing: Arc<Sharing>) -> Self {
        Self { queries, guard, sharing }
    }

    fn audit<T>(&self, request: &Request<T>, who: &Principal, op: &'static str, detail: Value, outcome: &str) {
        audit_read(&self.guard, request, who, op, detail, outcome);
    }

    /// Refuses with `status`, audited.
    fn refuse<T>(
        &self,
        request: &Request<T>,
        who: &Principal,
        op: &'static str,
        detail: Value,
        status: Status,
    ) -> Status {
        self.audit(request, who, op, detail, &format!("{:?}", status.code()));
        status
    }

    /// A grant as answered: with whether it is active, and overdue, today.
    fn grant_json(&self, g: &Grant) -> String {
        let today = self.sharing.today();
        let mut v = serde_json::to_value(g).unwrap_or_default();
        v["active"] = g.active(today).into();
        v["overdue"] = g.overdue(today).into();
        if g.status == GrantStatus::Approved && !g.active(today) {
            v["expired"] = true.into();
        }
        v.to_string()
    }

    async fn load_grant<T>(
        &self,
        request: &Request<T>,
        who: &Principal,
        op: &'static str,
        id: &str,
    ) -> Result<Grant, Status> {
        let i = id.to_owned();
        match self.queries.run(move |s| s.grant(&i)).await? {
            Some(g) => Ok(g),
            None => Err(self.refuse(
                request,
                who,
                op,
                json!({"id": id}),
                Status::not_found(format!("no access request {id}")),
            )),
        }
    }
}

/// Whether `who` is the one to approve `g`.
fn approver(g: &Grant, who: &Principal) -> bool {
    match who {
        Principal::Department(d) => g.approver == "provider" && *d == g.provider,
        Principal::Admin(_) => g.approver == "admin",
        Principal::Consumer(_) => false,
    }
}

/// Whether `who` sees request `g`.
fn sees(g: &Grant, who: &Principal) -> bool {
    match who {
        Principal::Admin(_) => true,
        Principal::Department(d) => *d == g.provider,
        Principal::Consumer(c) => *c == g.consumer,
    }
}

#[tonic::async_trait]
impl access_server::Access for AccessService {
    async fn get_catalog(&self, request: Request<GetCatalogRequest>) -> Result<Response<CatalogReply>, Status> {
        let who = self.guard.reader(&request, "GetCatalog")?;
        let grants = match &who {
            Principal::Consumer(c) => {
                let c = c.clone();
                self.queries.run(move |s| s.grants_of(&c)).await?
            }
            _ => Vec::new(),
        };
        let today = self.sharing.today();
        let resources_json = self
            .sharing
            .catalog
            .resources
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                let mine: Vec<&Grant> = grants.iter().filter(|g| g.resource == r.id).collect();
                v["standing"] = match &who {
                    Principal::Consumer(_) => {
                        if let Some(g) = mine.iter().find(|g| g.active(today)) {
                            json!({"granted": true, "grant": g.id, "until": g.until, "fields": g.fields})
                        } else if let Some(g) = mine.iter().find(|g| g.status == GrantStatus::Pending) {
                            json!({"pending": g.id})
                        } else {
                            json!({"requestable": true, "approver": r.approver})
                        }
                    }
                    Principal::Department(d) => json!({"provider": *d == r.provider}),
                    Principal::Admin(_) => json!({"admin": true}),
                };
                v.to_string()
            })
            .collect();
        self.audit(&request, &who, "GetCatalog", json!({}), "Ok");
        Ok(Response::new(CatalogReply { resources_json }))
    }

    async fn request_access(&self, request: Request<RequestAccessRequest>) -> Result<Response<AccessReply>, Status> {
        let who = self.guard.reader(&request, "RequestAccess")?;
        let r = request.get_ref();
        let detail = json!({"resource": r.resource, "until": r.until});
        let Principal::Consumer(consumer) = &who else {
            let s = Status::permission_denied(format!(
                "{} {} is not a consumer identity: departments and admins do not request access (a department reads \
                 what it submits; consumers are listed under [consumers] in the policy)",
                who.role(),
                who.name()
            ));
            return Err(self.refuse(&request, &who, "RequestAccess", detail, s));
        };
        let invalid = |m: String| Status::invalid_argument(m);
        let Some(resource) = self.sharing.catalog.get(r.resource.trim()) else {
            let s = invalid(hutong_sharing::RequestError::UnknownResource(r.resource.clone()).to_string());
            return Err(self.refuse(&request, &who, "RequestAccess", detail, s));
        };
        let checked = (|| {
            if r.purpose.trim().is_empty() {
                return Err(hutong_sharing::RequestError::Missing("--purpose (用途)").to_string());
            }
            if r.scenario.trim().is_empty() {
                return Err(hutong_sharing::RequestError::Missing("--scenario (应用场景)").to_string());
            }
            let fields = granted_fields(resource, &r.fields).map_err(|e| e.to_string())?;
            if let Some(bad) = r.grids.iter().find(|g| g.len() != 15 || !g.bytes().all(|b| b.is_ascii_digit())) {
                return Err(format!("--grid {bad:?}: a 网格 code is 15 digits (see `hutong profile grid`)"));
            }
            let until = NaiveDate::parse_from_str(r.until.trim(), "%Y-%m-%d")
                .map_err(|_| format!("--until {:?}: expected a date, YYYY-MM-DD", r.until))?;
            let today = self.sharing.today();
            let latest = today + Days::new(366);
            if until < today || until > latest {
                return Err(format!("--until {until}: must be from today ({today}) to a year ahead ({latest})"));
            }
            Ok((fields, until))
        })();
        let (fields, until) = match checked {
            Ok(v) => v,
            Err(m) => return Err(self.refuse(&request, &who, "RequestAccess", detail, invalid(m))),
        };
        let today = self.sharing.today();
        let grant = Grant {
            id: String::new(),
            consumer: consumer.clone(),
            resource: resource.id.clone(),
            provider: resource.provider.clone(),
            sharing: resource.sharing.clone(),
            approver: resource.approver.clone(),
            fields,
            grids: r.grids.iter().map(|g| g.trim().to_owned()).collect(),
            purpose: r.purpose.trim().to_owned(),
            scenario: r.scenario.trim().to_owned(),
            until,
            status: GrantStatus::Pending,
            requested_at: self.sharing.now(),
            due: self.sharing.calendar.add_working_days(today, REPLY_WORKING_DAYS).value,
            decided_by: None,
            decided_at: None,
            reason: None,
        };
        let grant = self.queries.run(move |s| s.add_grant(grant)).await?;
        self.audit(&request, &who, "RequestAccess", json!({"id": grant.id, "resource": grant.resource}), "Ok");
        Ok(Response::new(AccessReply { request_json: self.grant_json(&grant) }))
    }

    async fn list_requests(
        &self,
        request: Request<ListRequestsRequest>,
    ) -> Result<Response<ListRequestsReply>, Status> {
        let who = self.guard.reader(&request, "ListRequests")?;
        let pending = request.get_ref().pending;
        let all = self.queries.run(crate::Store::grants).await?;
        let requests_json: Vec<String> = all
            .iter()
            .filter(|g| sees(g, &who) && (!pending || g.status == GrantStatus::Pending))
            .map(|g| self.grant_json(g))
            .collect();
        self.audit(&request, &who, "ListRequests", json!({"pending": pending, "requests": requests_json.len()}), "Ok");
        Ok(Response::new(ListRequestsReply { requests_json, now: self.sharing.now() }))
    }

    async fn decide(&self, request: Request<DecideRequest>) -> Result<Response<AccessReply>, Status> {
        let who = self.guard.reader(&request, "Decide")?;
        let r = request.get_ref();
        let op = if r.approve { "Approve" } else { "Deny" };
        let detail = json!({"id": r.id, "approve": r.approve});
        let mut g = self.load_grant(&request, &who, op, r.id.trim()).await?;
        if !approver(&g, &who) {
            let by = if g.approver == "provider" {
                format!("its provider, department {}", g.provider)
            } else {
                "an admin".to_owned()
            };
            let s = Status::permission_denied(format!(
                "{} {} may not decide {}: a {} request of {} is decided by {by}",
                who.role(),
                who.name(),
                g.id,
                hutong_sharing::sharing_name(&g.sharing),
                g.resource
            ));
            return Err(self.refuse(&request, &who, op, detail, s));
        }
        if g.status != GrantStatus::Pending {
            let s = Status::failed_precondition(format!("{} is {}, not pending", g.id, g.status.as_str()));
            return Err(self.refuse(&request, &who, op, detail, s));
        }
        if !r.approve && r.reason.trim().is_empty() {
            let s = Status::invalid_argument("a denial needs --reason: the consumer is told why");
            return Err(self.refuse(&request, &who, op, detail, s));
        }
        g.status = if r.approve { GrantStatus::Approved } else { GrantStatus::Denied };
        g.decided_by = Some(format!("{}:{}", who.role(), who.name()));
        g.decided_at = Some(self.sharing.now());
        g.reason = Some(r.reason.trim().to_owned()).filter(|s| !s.is_empty());
        let stored = g.clone();
        self.queries.run(move |s| s.put_grant(&stored)).await?;
        self.audit(&request, &who, op, detail, "Ok");
        Ok(Response::new(AccessReply { request_json: self.grant_json(&g) }))
    }

    async fn revoke(&self, request: Request<RevokeRequest>) -> Result<Response<AccessReply>, Status> {
        let who = self.guard.reader(&request, "Revoke")?;
        let r = request.get_ref();
        let detail = json!({"id": r.id});
        let mut g = self.load_grant(&request, &who, "Revoke", r.id.trim()).await?;
        if !sees(&g, &who) {
            let s = Status::permission_denied(format!(
                "{} {} may not revoke {}: its consumer, its provider or an admin may",
                who.role(),
                who.name(),
                g.id
            ));
            return Err(self.refuse(&request, &who, "Revoke", detail, s));
        }
        if !matches!(g.status, GrantStatus::Approved | GrantStatus::Pending) {
            let s = Status::failed_precondition(format!("{} is {}", g.id, g.status.as_str()));
            return Err(self.refuse(&request, &who, "Revoke", detail, s));
        }
        g.status = GrantStatus::Revoked;
        g.decided_by = Some(format!("{}:{}", who.role(), who.name()));
        g.decided_at = Some(self.sharing.now());
        g.reason = Some(r.reason.trim().to_owned()).filter(|s| !s.is_empty());
        let stored = g.clone();
        self.queries.run(move |s| s.put_grant(&stored)).await?;
        self.audit(&request, &who, "Revoke", detail, "Ok");
        Ok(Response::new(AccessReply { request_json: self.grant_json(&g) }))
    }

    async fn list_usage(&self, request: Request<ListUsageRequest>) -> Result<Response<ListUsageReply>, Status> {
        let who = self.guard.reader(&request, "ListUsage")?;
        let (rows, signals) = self.queries.run(|s| Ok((s.usage()?, s.signals()?))).await?;
        let catalog = &self.sharing.catalog;
        let provides = |d: &str, resource: &Value| {
            catalog.get(resource.as_str().unwrap_or_default()).is_some_and(|r| r.provider == d)
        };
        let signals_json: Vec<String> = signals
            .into_iter()
            .filter(|g| match &who {
                Principal::Admin(_) => true,
                Principal::Consumer(c) => g["consumer"] == c.as_str(),
                Principal::Department(d) => g["resources"].as_array().into_iter().flatten().any(|r| provides(d, r)),
            })
            .map(|g| g.to_string())
            .collect();
        let usage_json: Vec<String> = rows
            .into_iter()
            .filter(|u| match &who {
                Principal::Admin(_) => true,
                Principal::Consumer(c) => u["consumer"] == c.as_str(),
                Principal::Department(d) => provides(d, &u["resource"]),
            })
            .map(|u| u.to_string())
            .collect();
        self.audit(&request, &who, "ListUsage", json!({"rows": usage_json.len()}), "Ok");
        Ok(Response::new(ListUsageReply { usage_json, signals_json }))
    }

    async fn file_objection(&self, request: Request<FileObjectionRequest>) -> Result<Response<ObjectionReply>, Status> {
        let who = self.guard.reader(&request, "FileObjection")?;
        let r = request.get_ref();
        let detail = json!({"ce_id": r.ce_id, "pointer": r.pointer});
        let (ce_id, pointer, reason) =
            (r.ce_id.trim().to_owned(), r.pointer.trim().to_owned(), r.reason.trim().to_owned());
        if ce_id.is_empty() || !pointer.starts_with('/') || reason.is_empty() {
            let s = Status::invalid_argument(
                "an objection names the fact (--ce-id, as a profile field's source shows it), what is wrong in it \
                 (--pointer, a JSON pointer such as /birth_date) and why (--reason)",
            );
            return Err(self.refuse(&request, &who, "FileObjection", detail, s));
        }
        let c = ce_id.clone();
        let Some(fact) = self.queries.run(move |s| s.fact_by_ce_id(&c)).await? else {
            let s = Status::not_found(format!(
                "no current fact has event id {ce_id}: it may have been replaced by a newer revision already"
            ));
            return Err(self.refuse(&request, &who, "FileObjection", detail, s));
        };
        if let Principal::Consumer(c) = &who {
            let resource = format!("{}.{}", fact.department, fact.kind);
            if !self.sharing.allowed(&self.queries, c).await?.has(&resource) {
                return Err(self.refuse(&request, &who, "FileObjection", detail, not_granted(c, &resource)));
            }
        }
        let today = self.sharing.today();
        let doc = json!({
            "ce_id": ce_id,
            "entity": fact.entity,
            "entity_key": fact.entity_key,
            "department": fact.department,
            "kind": fact.kind,
            "source_id": fact.source_id,
            "revision": fact.revision,
            "pointer": pointer,
            "reason": reason,
            "filed_by": who.name(),
            "filed_by_role": who.role(),
            "filed_at": self.sharing.now(),
            "due": self.sharing.calendar.add_working_days(today, OBJECTION_WORKING_DAYS).value,
            "status": "open",
        });
        let doc = self.queries.run(move |s| s.add_objection(&fact, doc)).await?;
        self.audit(&request, &who, "FileObjection", json!({"id": doc["id"], "department": doc["department"]}), "Ok");
        Ok(Response::new(ObjectionReply { objection_json: doc.to_string() }))
    }

    async fn list_objections(
        &self,
        request: Request<ListObjectionsRequest>,
    ) -> Result<Response<ListObjectionsReply>, Status> {
        let who = self.guard.reader(&request, "ListObjections")?;
        let r = request.get_ref();
        let department = match (&who, r.mine) {
            (Principal::Department(d), true) => Some(d.clone()),
            _ => None,
        };
        let (all, d) = (r.all, department.clone());
        let found = self.queries.run(move |s| s.objections(d.as_deref(), !all)).await?;
        let today = self.sharing.today();
        let objections_json: Vec<String> = found
            .into_iter()
            .filter(|o| match &who {
                Principal::Admin(_) => true,
                Principal::Department(d) => o["department"] == d.as_str() || o["filed_by"] == d.as_str(),
                Principal::Consumer(c) => o["filed_by"] == c.as_str(),
            })
            .map(|mut o| {
                let (filed, due) = (day_of(&o["filed_at"]), day_of(&o["due"]));
                let open = matches!(o["status"].as_str(), Some("open" | "acknowledged"));
                if let Some(filed) = filed {
                    let end = day_of(&o["resolved_at"]).unwrap_or(today);
                    o["working_days"] = self.sharing.calendar.working_days_between(filed, end).value.into();
                }
                o["overdue"] = (open && due.is_some_and(|d| today > d)).into();
                o.to_string()
            })
            .collect();
        self.audit(
            &request,
            &who,
            "ListObjections",
            json!({"mine": r.mine, "objections": objections_json.len()}),
            "Ok",
        );
        Ok(Response::new(ListObjectionsReply { objections_json, now: self.sharing.now() }))
    }

    async fn resolve_objection(
        &self,
        request: Request<ResolveObjectionRequest>,
    ) -> Result<Response<ObjectionReply>, Status> {
        let who = self.guard.reader(&request, "ResolveObjection")?;
        let r = request.get_ref();
        let detail = json!({"id": r.id, "action": r.action});
        let id = r.id.trim().to_owned();
        let Some(mut doc) = self.queries.run(move |s| s.objection(&id)).await? else {
            let s = Status::not_found(format!("no objection {}", r.id));
            return Err(self.refuse(&request, &who, "ResolveObjection", detail, s));
        };
        if !matches!(&who, Principal::Department(d) if doc["department"] == d.as_str()) {
            let s = Status::permission_denied(format!(
                "{} {} may not resolve {}: only its source department, {}, may",
                who.role(),
                who.name(),
                r.id,
                doc["department"].as_str().unwrap_or_default()
            ));
            return Err(self.refuse(&request, &who, "ResolveObjection", detail, s));
        }
        if !matches!(doc["status"].as_str(), Some("open" | "acknowledged")) {
            let s = Status::failed_precondition(format!("{} is {}", r.id, doc["status"].as_str().unwrap_or_default()));
            return Err(self.refuse(&request, &who, "ResolveObjection", detail, s));
        }
        match r.action.as_str() {
            "acknowledge" => {
                doc["status"] = "acknowledged".into();
                doc["acknowledged_at"] = self.sharing.now().into();
            }
            "dismiss" if !r.reason.trim().is_empty() => {
                doc["status"] = "dismissed".into();
                doc["resolved_at"] = self.sharing.now().into();
                doc["resolution"] = r.reason.trim().into();
            }
            other => {
                let s = Status::invalid_argument(format!(
                    "action {other:?}: acknowledge, or dismiss with a reason (a correction closes it by itself: submit the \
                     corrected record with a higher revision)"
                ));
                return Err(self.refuse(&request, &who, "ResolveObjection", detail, s));
            }
        }
        let stored = doc.clone();
        self.queries.run(move |s| s.put_objection(&stored)).await?;
        self.audit(&request, &who, "ResolveObjection", detail, "Ok");
        Ok(Response::new(ObjectionReply { objection_json: doc.to_string() }))
    }
}

/// The sharing side as Prometheus text: per consumer and resource the queries and records
/// answered, pending requests per provider (and how many are past their reply deadline), open
/// objections per source department, misuse signals per consumer.
pub async fn metrics_text(queries: &Queries, today: NaiveDate) -> Result<String, Status> {
    let (usage, grants, objections, signals) =
        queries.run(|s| Ok((s.usage()?, s.grants()?, s.objections(None, true)?, s.signals()?))).await?;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        crate::governance_service::family(&mut out, &format!("hutong_access_{name}"), kind, help, rows);
    };
    let pair = |u: &Value| {
        format!(
            "consumer=\"{}\",resource=\"{}\"",
            u["consumer"].as_str().unwrap_or(""),
            u["resource"].as_str().unwrap_or("")
        )
    };
    let count = |u: &Value, k: &str| u[k].as_u64().unwrap_or(0);
    family(
        "queries_total",
        "counter",
        "Answers a consumer got drawing on a resource.",
        usage.iter().map(|u| (pair(u), count(u, "queries"))).collect(),
    );
    family(
        "records_total",
        "counter",
        "Records a consumer got of a resource.",
        usage.iter().map(|u| (pair(u), count(u, "records"))).collect(),
    );
    let mut pending: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for g in grants.iter().filter(|g| g.status == GrantStatus::Pending) {
        let e = pending.entry(g.provider.clone()).or_default();
        e.0 += 1;
        e.1 += u64::from(g.overdue(today));
    }
    family(
        "pending_requests",
        "gauge",
        "Access requests waiting for a decision, per provider.",
        pending.iter().map(|(p, (n, _))| (format!("provider=\"{p}\""), *n)).collect(),
    );
    family(
        "overdue_requests",
        "gauge",
        "Pending access requests past their reply deadline (working days), per provider.",
        pending.iter().map(|(p, (_, o))| (format!("provider=\"{p}\""), *o)).collect(),
    );
    let active = grants.iter().filter(|g| g.active(today)).count() as u64;
    family("active_grants", "gauge", "Grants in force today.", vec![(String::new(), active)]);
    let mut open: BTreeMap<String, u64> = BTreeMap::new();
    for o in &objections {
        *open.entry(o["department"].as_str().unwrap_or("").to_owned()).or_default() += 1;
    }
    family(
        "open_objections",
        "gauge",
        "Objections (数据异议) waiting for their source department.",
        open.into_iter().map(|(d, n)| (format!("department=\"{d}\""), n)).collect(),
    );
    let mut by_consumer: BTreeMap<String, u64> = BTreeMap::new();
    for g in &signals {
        *by_consumer.entry(g["consumer"].as_str().unwrap_or("").to_owned()).or_default() += 1;
    }
    family(
        "misuse_signals_total",
        "counter",
        "Misuse signals raised about a consumer.",
        by_consumer.into_iter().map(|(c, n)| (format!("consumer=\"{c}\""), n)).collect(),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_above_its_rate_is_refused_and_others_are_not() {
        let limits = Limits::new(1, 2, 0);
        assert!(limits.admit("zhihui").is_ok() && limits.admit("zhihui").is_ok(), "the burst");
        let refused = limits.admit("zhihui").expect_err("above the burst");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(limits.admit("zongzhi").is_ok(), "per consumer");
        assert!(Limits::new(0, 0, 0).admit("zhihui").is_ok(), "0: no limit");
    }

    #[test]
    fn reading_past_the_hourly_limit_signals_once_an_hour() {
        let limits = Limits::new(0, 0, 3);
        assert_eq!(limits.note_reads("zhihui", 10, ["a", "b", "a"]), None);
        assert_eq!(limits.note_reads("zhihui", 10, ["c"]), None, "3 distinct: at the limit");
        assert_eq!(limits.note_reads("zongzhi", 10, ["a", "b", "c"]), None, "per consumer");
        assert_eq!(limits.note_reads("zhihui", 10, ["d", "e"]), Some(5));
        assert_eq!(limits.note_reads("zhihui", 10, ["f", "g", "h", "i"]), None, "once an hour");
        assert_eq!(limits.note_reads("zhihui", 11, ["a", "b", "c", "d"]), Some(4), "a new hour");
        assert_eq!(Limits::new(0, 0, 0).note_reads("zhihui", 10, ["a", "b", "c", "d"]), None);
    }

    #[test]
    fn a_consumer_sees_only_granted_fields_and_elements() {
        let mut allowed = Allowed::default();
        allowed.resources.insert("gongan.household_registration".into());
        allowed.by_source.insert(
            ("gongan".into(), "household_registration".into()),
            Scope {
                resource: "gongan.household_registration".into(),
                fields: ["person.name".to_owned(), "person.special_population".to_owned()].into(),
                grids: None,
            },
        );
        let src = |d: &str, k: &str| json!({"department": d, "kind": k, "ce_id": format!("{d}-1")});
        let mut doc = json!({
            "entity": "person",
            "record": {"person_key": "P", "name": "胡金凤", "phone": "139", "special_population": ["0101", "0401"]},
            "fields": {
                "name": {"source": src("gongan", "household_registration"), "by": "authority"},
                "phone": {"source": src("weijian", "elderly_health"), "by": "most-recent"},
                "special_population": {"merge": "set", "elements": [
                    {"value": "0101", "sources": [src("gongan", "household_registration"), src("minzheng", "elderly_care")]},
                    {"value": "0401", "sources": [src("minzheng", "elderly_care")]}
                ]}
            },
            "conflicts": [{"field": "name"}],
            "checks": [],
            "sources": [src("gongan", "household_registration"), src("weijian", "elderly_health")]
        });
        let used = allowed.filter(&mut doc);
        assert_eq!(used.keys().collect::<Vec<_>>(), ["gongan.household_registration"]);
        assert_eq!(doc["record"], json!({"person_key": "P", "name": "胡金凤", "special_population": ["0101"]}));
        assert!(doc["fields"]["phone"]["withheld"].is_string());
        assert_eq!(doc["fields"]["special_population"]["elements"][0]["sources"].as_array().unwrap().len(), 1);
        assert!(doc.get("conflicts").is_none() && doc.get("checks").is_none());
        assert_eq!(doc["sources"].as_array().unwrap().len(), 1);
        assert!(allowed.any_of("person") && !allowed.any_of("household"));
    }

    #[test]
    fn a_grant_limited_to_grids_holds_only_there() {
        let mut allowed = Allowed::default();
        allowed.by_source.insert(
            ("gongan".into(), "household_registration".into()),
            Scope {
                resource: "gongan.household_registration".into(),
                fields: ["person.name".to_owned()].into(),
                grids: Some(["330106004053001".to_owned()].into()),
            },
        );
        let doc = |grid: &str| {
            json!({"entity": "person", "record": {"person_key": "P", "name": "胡金凤", "grid_code": grid},
                   "fields": {"name": {"source": {"department": "gongan", "kind": "household_registration"}}}})
        };
        let mut inside = doc("330106004053001");
        assert_eq!(allowed.filter(&mut inside).len(), 1);
        assert_eq!(inside["record"]["name"], "胡金凤");
        let mut outside = doc("330106004053002");
        assert!(allowed.filter(&mut outside).is_empty(), "another grid: nothing");
        assert!(outside["record"].get("name").is_none());
        assert!(allowed.holds_in("person", "330106004053001") && !allowed.holds_in("person", "330106004053002"));
    }
}

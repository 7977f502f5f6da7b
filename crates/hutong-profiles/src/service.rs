//! `hutong.v1.Profiles`: profiles, people of a household, building or grid, and conflicts, for
//! identified callers; every read audited; fields the standard marks 不予共享 (`x-sharing:
//! none`) shown only to the department they came from.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use hutong_adapter::PseudonymKey;
use hutong_config::Principal;
use hutong_gateway::{AuditEvent, Guard};
use hutong_proto::v1::{
    FindPersonRequest, GetProfileRequest, ListConflictsReply, ListConflictsRequest, ListPeopleReply, ListPeopleRequest,
    PersonLink, ProfileReply, profiles_server::Profiles,
};
use hutong_standard::Standard;
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

use crate::store::{Store, StoreError, StoreUrl};

/// A connection to the store for queries, shared by the query services, reopened when it was
/// lost; queries run off the async threads.
#[derive(Clone)]
pub struct Queries {
    store: Arc<Mutex<Option<Store>>>,
    url: StoreUrl,
}

impl Queries {
    /// Queries on the store at `url` (a connection of their own, opened on first use).
    pub fn new(url: StoreUrl) -> Self {
        Self { store: Arc::default(), url }
    }

    /// Runs `query` on the store connection (reconnecting when it was lost), off the async
    /// threads.
    pub async fn run<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let (store, url) = (Arc::clone(&self.store), self.url.clone());
        tokio::task::spawn_blocking(move || {
            let mut held = store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if held.is_none() {
                *held = Some(Store::open(&url)?);
            }
            let result = query(held.as_mut().expect("opened"));
            if result.is_err() {
                *held = None;
            }
            result
        })
        .await
        .map_err(|e| Status::internal(format!("query task: {e}")))?
        .map_err(|e| Status::unavailable(format!("the profile store: {e}")))
    }
}

/// Records a read by `who` in the audit trail of `guard`.
pub(crate) fn audit_read<T>(
    guard: &Guard,
    request: &Request<T>,
    who: &Principal,
    operation: &'static str,
    detail: Value,
    outcome: &str,
) {
    guard.auditor().record(AuditEvent::Read {
        principal: who.name().to_owned(),
        role: who.role(),
        peer: request.remote_addr().map(|a| a.to_string()),
        operation,
        detail,
        outcome: outcome.to_owned(),
    });
}

/// The query side of the profile service.
pub struct ProfilesService {
    queries: Queries,
    guard: Arc<Guard>,
    key: PseudonymKey,
    /// Per entity, the fields not to be shared beyond their source department.
    unshared: BTreeMap<String, BTreeSet<String>>,
    /// What a consumer identity may see: its grants.
    sharing: Arc<crate::access_service::Sharing>,
}

impl ProfilesService {
    /// Serves the profiles of the store at `url` (a connection of its own) to callers `guard`
    /// lets in; `key` turns a citizen ID into its person key.
    pub fn new(
        queries: Queries,
        guard: Arc<Guard>,
        key: PseudonymKey,
        standard: &Standard,
        sharing: Arc<crate::access_service::Sharing>,
    ) -> Self {
        let unshared = standard
            .entities()
            .map(|e| {
                let fields = e.dereferenced["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, s)| s["x-sharing"] == "none")
                    .map(|(f, _)| f.clone())
                    .collect();
                (e.name.clone(), fields)
            })
            .collect();
        Self { queries, guard, key, unshared, sharing }
    }

    async fn query<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        self.queries.run(query).await
    }

    fn audit<T>(&self, request: &Request<T>, who: &Principal, operation: &'static str, detail: Value, outcome: &str) {
        audit_read(&self.guard, request, who, operation, detail, outcome);
    }

    /// `doc` as `who` may see it: a 不予共享 field only for the department it came from.
    fn protect(&self, who: &Principal, mut doc: Value) -> Value {
        let entity = doc["entity"].as_str().unwrap_or_default().to_owned();
        let Some(unshared) = self.unshared.get(&entity) else { return doc };
        let mine = |source: &Value| matches!(who, Principal::Department(d) if source["department"] == d.as_str());
        for field in unshared {
            if doc["fields"].get(field).is_some_and(|f| !mine(&f["source"])) {
                if let Some(record) = doc["record"].as_object_mut() {
                    record.remove(field);
                }
                doc["fields"][field] = json!({"withheld": "不予共享: shown only to the department it came from"});
            }
            for list in ["conflicts", "checks"] {
                if let Some(items) = doc[list].as_array_mut() {
                    for c in items.iter_mut().filter(|c| c["field"] == field.as_str()) {
                        for side in ["winner", "loser"] {
                            if c.get(side).is_some() && !mine(&c[side]["source"]) {
                                c[side]["value"] = Value::Null;
                            }
                        }
                    }
                }
            }
        }
        doc
    }

    async fn answer_profile<T>(
        &self,
        request: &Request<T>,
        who: &Principal,
        operation: &'static str,
        entity: String,
        key: String,
        by: &str,
    ) -> Result<Response<ProfileReply>, Status> {
        let (e, k) = (entity.clone(), key.clone());
        let found = self.query(move |s| s.profile(&e, &k)).await;
        let detail = json!({"entity": entity, "key": key, "by": by});
        match found {
            Ok(Some(doc)) => {
                let mut doc = self.protect(who, doc);
                if let Principal::Consumer(c) = who {
                    let used = self.sharing.allowed(&self.queries, c).await?.filter(&mut doc);
                    if used.is_empty() {
                        self.audit(request, who, operation, detail, "PermissionDenied");
                        return Err(crate::access_service::nothing_granted(
                            c,
                            &format!("any source of this {entity} profile"),
                        ));
                    }
                    self.sharing.count(&self.queries, who, used).await?;
                }
                self.mark_objections(std::slice::from_mut(&mut doc)).await?;
                self.sharing.watch(&self.guard, &self.queries, request, who, &[key.as_str()]).await?;
                self.audit(request, who, operation, detail, "Ok");
                Ok(Response::new(ProfileReply { profile_json: doc.to_string() }))
            }
            Ok(None) => {
                self.audit(request, who, operation, detail, "NotFound");
                Err(Status::not_found(format!(
                    "no {entity} profile with that key: no department states anything about it"
                )))
            }
            Err(s) => {
                self.audit(request, who, operation, detail, &format!("{:?}", s.code()));
                Err(s)
            }
        }
    }

    /// Marks the fields of `docs` whose source fact has an open objection (异议).
    async fn mark_objections(&self, docs: &mut [Value]) -> Result<(), Status> {
        let ce_ids: BTreeSet<String> = docs.iter().flat_map(crate::access_service::ce_ids).collect();
        if ce_ids.is_empty() {
            return Ok(());
        }
        let open = self.query(move |s| s.open_objections_on(&ce_ids)).await?;
        for d in docs {
            crate::access_service::mark_objections(d, &open);
        }
        Ok(())
    }

    fn entity_of(&self, entity: &str, allowed: &[&str]) -> Result<String, Status> {
        if allowed.contains(&entity) {
            Ok(entity.to_owned())
        } else {
            Err(Status::invalid_argument(format!("entity {entity:?}: expected one of {}", allowed.join(", "))))
        }
    }
}

/// The entities with profiles.
const PROFILED: &[&str] = &["person", "household", "building", "grid", "organization"];

#[tonic::async_trait]
impl Profiles for ProfilesService {
    async fn get_profile(&self, request: Request<GetProfileRequest>) -> Result<Response<ProfileReply>, Status> {
        let who = self.guard.reader(&request, "GetProfile")?;
        let entity = self.entity_of(&request.get_ref().entity, PROFILED)?;
        let key = request.get_ref().key.trim().to_owned();
        if key.is_empty() {
            return Err(Status::invalid_argument("key is empty"));
        }
        self.answer_profile(&request, &who, "GetProfile", entity, key, "key").await
    }

    async fn find_person(&self, request: Request<FindPersonRequest>) -> Result<Response<ProfileReply>, Status> {
        let who = self.guard.reader(&request, "FindPerson")?;
        let Some(id) = hutong_pipeline::normalise_citizen_id(&request.get_ref().citizen_id) else {
            self.audit(
                &request,
                &who,
                "FindPerson",
                json!({"entity": "person", "by": "citizen-id"}),
                "InvalidArgument",
            );
            return Err(Status::invalid_argument(
                "not a valid citizen ID (GB 11643: 18 characters with a check character, or a legacy 15-digit number)",
            ));
        };
        let key = self.key.pseudonym(&id);
        self.answer_profile(&request, &who, "FindPerson", "person".into(), key, "citizen-id").await
    }

    async fn list_people(&self, request: Request<ListPeopleRequest>) -> Result<Response<ListPeopleReply>, Status> {
        let who = self.guard.reader(&request, "ListPeople")?;
        let r = request.get_ref();
        let entity = self.entity_of(&r.entity, &["household", "building", "grid"])?;
        let key = r.key.trim().to_owned();
        let allowed = match &who {
            Principal::Consumer(c) => {
                let allowed = self.sharing.allowed(&self.queries, c).await?;
                if !allowed.any_of("person") {
                    self.audit(&request, &who, "ListPeople", json!({"entity": entity, "key": key}), "PermissionDenied");
                    return Err(crate::access_service::nothing_granted(c, "any resource about persons"));
                }
                if entity == "grid" && !allowed.holds_in("person", &key) {
                    self.audit(&request, &who, "ListPeople", json!({"entity": entity, "key": key}), "PermissionDenied");
                    let detail = format!("asked for the people of 网格 {key}, outside its granted grids");
                    self.sharing.signal(&self.guard, &self.queries, &request, &who, "out-of-scope", detail).await?;
                    return Err(crate::access_service::nothing_granted(c, &format!("网格 {key}")));
                }
                Some(allowed)
            }
            _ => None,
        };
        let limit = if r.limit == 0 { 1000 } else { r.limit as usize };
        let (e, k) = (entity.clone(), key.clone());
        let found = self.query(move |s| s.people_of(&e, &k, limit)).await;
        let detail = |n: usize| json!({"entity": entity, "key": key, "people": n});
        let (people, total) =
            found.inspect_err(|s| self.audit(&request, &who, "ListPeople", detail(0), &format!("{:?}", s.code())))?;
        self.audit(&request, &who, "ListPeople", detail(people.len()), "Ok");
        let mut docs: Vec<Value> =
            people.iter().map(|p| p.profile.clone().map_or(Value::Null, |d| self.protect(&who, d))).collect();
        if let Some(allowed) = &allowed {
            let mut used: BTreeMap<String, u64> = BTreeMap::new();
            for d in docs.iter_mut().filter(|d| !d.is_null()) {
                for (r, n) in allowed.filter(d) {
                    *used.entry(r).or_default() += n;
                }
            }
            self.sharing.count(&self.queries, &who, used).await?;
        }
        self.mark_objections(&mut docs).await?;
        let keys: Vec<&str> = people.iter().map(|p| p.person_key.as_str()).collect();
        self.sharing.watch(&self.guard, &self.queries, &request, &who, &keys).await?;
        let people = people
            .into_iter()
            .zip(docs)
            .map(|(p, d)| PersonLink {
                person_key: p.person_key,
                link_json: p.link.to_string(),
                profile_json: if d.is_null() { String::new() } else { d.to_string() },
            })
            .collect();
        Ok(Response::new(ListPeopleReply { people, total }))
    }

    async fn list_conflicts(
        &self,
        request: Request<ListConflictsRequest>,
    ) -> Result<Response<ListConflictsReply>, Status> {
        let who = self.guard.reader(&request, "ListConflicts")?;
        let r = request.get_ref();
        if let Principal::Consumer(c) = &who {
            self.audit(&request, &who, "ListConflicts", json!({}), "PermissionDenied");
            return Err(Status::permission_denied(format!(
                "consumer {c}: conflicts between departments are for the departments and admins; a consumer raises a \
                 doubt about a fact with an objection (hutong objection file)"
            )));
        }
        let (entity, department) = (r.entity.clone(), r.department.clone());
        let limit = if r.limit == 0 { 1000 } else { r.limit as usize };
        let (e, d) = (entity.clone(), department.clone());
        let found = self
            .query(move |s| {
                s.conflicts(
                    Some(e.as_str()).filter(|e| !e.is_empty()),
                    Some(d.as_str()).filter(|d| !d.is_empty()),
                    limit,
                )
            })
            .await;
        let detail = json!({"entity": entity, "department": department});
        let (docs, counts) = found
            .inspect_err(|s| self.audit(&request, &who, "ListConflicts", detail.clone(), &format!("{:?}", s.code())))?;
        self.audit(&request, &who, "ListConflicts", detail, "Ok");
        // Conflicts of a 不予共享 field are protected like the profile they belong to.
        let conflicts_json = docs
            .into_iter()
            .map(|c| {
                let wrapped = json!({"entity": c["entity"], "conflicts": [c], "checks": []});
                self.protect(&who, wrapped)["conflicts"][0].to_string()
            })
            .collect();
        Ok(Response::new(ListConflictsReply { conflicts_json, per_department: counts.into_iter().collect() }))
    }
}

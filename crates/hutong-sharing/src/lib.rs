//! 共享目录, 申请审批: who may consume what.
//!
//! - [`Catalog`]: the resource catalogue (政务信息资源目录), generated from the adapters (the
//!   provider department, the source kind, the declared update cycle), the standard (each
//!   information item's `x-sharing`, `x-sensitivity` and `x-pii`) and the topic plan (the ways
//!   a resource is shared). One resource per adapter, plus Hutong's own derived resources.
//! - [`Grant`]: an access request and, once approved, the grant it is: fields, purpose,
//!   scenario, expiry.
//! - [`acl`]: what the Kafka brokers must enforce, computed from the active grants.
#![warn(missing_docs)]

pub mod acl;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use hutong_adapter::Adapters;
use hutong_bus::{TopicPlan, TopicRole};
use hutong_standard::Standard;
use serde::{Deserialize, Serialize};

/// The id of Hutong's own resource: the governance consumers' answers (event threads, alerts,
/// matches, the effectiveness report), granted by an admin.
pub const GOVERNANCE_RESOURCE: &str = "hutong.governance";

/// The provider of Hutong's own resources: the operator (大数据局), approving as an admin.
pub const HUTONG_PROVIDER: &str = "hutong";

/// A sharing class (共享属性) of the standard's `x-sharing`.
pub const SHARING_CLASSES: [&str; 3] = ["unconditional", "conditional", "none"];

/// The class a field without `x-sharing` is treated as: conditional, the one that needs the
/// owner's approval (never shared by default).
pub const DEFAULT_SHARING: &str = "conditional";

/// The whole catalogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catalog {
    /// The standard's version the catalogue describes.
    pub standard: String,
    /// Every resource, adapters' first (by provider and kind), then Hutong's own.
    pub resources: Vec<Resource>,
}

/// One shared resource with the core metadata of GB/T 21063.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    /// Its id: `<department>.<kind>` (or `hutong.<name>`).
    pub id: String,
    /// 资源代码: `HT-<provider>-<nnn>`, numbered per provider in kind order.
    pub code: String,
    /// 资源名称.
    pub name: String,
    /// 提供方: the department's code.
    pub provider: String,
    /// 提供方 by name (the department code list's).
    pub provider_name: String,
    /// 摘要.
    pub summary: String,
    /// 共享类型 of the resource: `unconditional` when every item is, else `conditional`.
    pub sharing: String,
    /// Who approves requests: `provider` (有条件共享: the owning department) or `admin`.
    pub approver: String,
    /// 更新周期, as the adapter declares it.
    pub update_cycle: Option<String>,
    /// 发布日期: the date of the standard's version.
    pub published: Option<String>,
    /// 信息项.
    pub items: Vec<Item>,
    /// 共享方式: the topics and APIs it is served on.
    pub channels: Vec<Channel>,
    /// The schema ids of its entities.
    pub schema_ids: Vec<String>,
}

/// An information item (信息项): one field of an entity the resource fills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `entity.field`.
    pub id: String,
    /// 信息项名称 (the schema's title).
    pub title: String,
    /// 共享类型: `unconditional`, `conditional` or `none` (never granted).
    pub sharing: String,
    /// 共享条件, in words.
    pub condition: String,
    /// 数据分级 (`x-sensitivity`), if declared.
    pub sensitivity: Option<String>,
    /// 个人信息类别 (`x-pii`), if personal.
    pub pii: Option<String>,
}

/// A way a resource is shared (共享方式).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// `topic`, `profile-topic`, `profile-api` or `governance-api`.
    pub way: String,
    /// The topic or the gRPC service.
    pub name: String,
    /// A restricted topic (clear personal data): readable only under a conditional grant.
    pub restricted: bool,
}

impl Resource {
    /// The items a consumer may be granted (every one but 不予共享).
    pub fn grantable(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.sharing != "none")
    }

    /// The topics a grant of this resource lets its consumer read.
    pub fn topics(&self) -> impl Iterator<Item = &Channel> {
        self.channels.iter().filter(|c| c.way.ends_with("topic"))
    }
}

impl Catalog {
    /// The catalogue of `adapters` under `standard`, shared on the topics of `plan`.
    pub fn build(standard: &Standard, adapters: &Adapters, plan: &TopicPlan) -> Self {
        let departments = standard.codes().get("department");
        let published = release_date(standard);
        let mut all: Vec<&hutong_adapter::Adapter> = adapters.iter().collect();
        all.sort_by(|a, b| (&a.department, &a.kind).cmp(&(&b.department, &b.kind)));
        let mut numbers: BTreeMap<&str, usize> = BTreeMap::new();
        let mut resources = Vec::new();
        for a in all {
            let n = numbers.entry(a.department.as_str()).or_default();
            *n += 1;
            let mut entities: Vec<&str> = Vec::new();
            for e in a.entities() {
                if !entities.contains(&e) {
                    entities.push(e);
                }
            }
            let mut items = Vec::new();
            let mut schema_ids = Vec::new();
            let mut channels = Vec::new();
            for entity in &entities {
                let Some(schema) = standard.entity(entity) else { continue };
                schema_ids.push(schema.schema_id.clone());
                let mut fields: Vec<&str> = a.fields_of(entity).collect();
                let order: Vec<&String> =
                    schema.dereferenced["properties"].as_object().map(|p| p.keys().collect()).unwrap_or_default();
                fields.sort_by_key(|f| order.iter().position(|o| o == f).unwrap_or(usize::MAX));
                fields.dedup();
                for field in fields {
                    items.push(item(entity, field, &schema.dereferenced["properties"][field]));
                }
                channels.extend(channels_of(plan, entity));
            }
            let sharing =
                if items.iter().all(|i| i.sharing == "unconditional") { "unconditional" } else { "conditional" };
            let provider_name = departments.and_then(|l| l.name_of(&a.department)).unwrap_or(&a.department).to_owned();
            resources.push(Resource {
                id: format!("{}.{}", a.department, a.kind),
                code: format!("HT-{}-{:03}", a.department, n),
                name: a.title.clone(),
                provider: a.department.clone(),
                provider_name,
                summary: format!(
                    "{}: {} records of {} as they reach the bus, normalised to the standard's {} (one fact per \
                     source record and entity).",
                    a.title,
                    a.kind,
                    a.department,
                    entities.join(", ")
                ),
                sharing: sharing.to_owned(),
                approver: if sharing == "conditional" { "provider" } else { "admin" }.to_owned(),
                update_cycle: a.update_cycle.clone(),
                published: published.clone(),
                items,
                channels,
                schema_ids,
            });
        }
        let governance: Vec<Channel> = plan
            .topics
            .iter()
            .filter(|t| matches!(t.role, TopicRole::Alert | TopicRole::Match))
            .map(|t| Channel { way: "topic".into(), name: t.name.clone(), restricted: false })
            .chain([Channel { way: "governance-api".into(), name: "hutong.v1.Governance".into(), restricted: false }])
            .collect();
        resources.push(Resource {
            id: GOVERNANCE_RESOURCE.to_owned(),
            code: format!("HT-{HUTONG_PROVIDER}-001"),
            name: "交办反馈督办 事件线程、督办预警、供需对接与成效评估".to_owned(),
            provider: HUTONG_PROVIDER.to_owned(),
            provider_name: "互通 共享服务 (大数据局)".to_owned(),
            summary: "The governance consumers' answers: events with their threads across departments and \
                      deadline status, supervision alerts, service requests with their candidate resources, \
                      the monthly effectiveness report. Granted whole, by an admin."
                .to_owned(),
            sharing: "conditional".to_owned(),
            approver: "admin".to_owned(),
            update_cycle: Some("realtime".to_owned()),
            published,
            items: Vec::new(),
            channels: governance,
            schema_ids: Vec::new(),
        });
        Self { standard: standard.version().to_owned(), resources }
    }

    /// The resource `id`.
    pub fn get(&self, id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.id == id)
    }

    /// The resource of a fact of `department` and `kind`.
    pub fn of_source(&self, department: &str, kind: &str) -> Option<&Resource> {
        self.get(&format!("{department}.{kind}"))
    }

    /// The catalogue as Markdown (`docs/catalog.md`).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("# 政务信息资源目录: the resource catalogue\n\n");
        out.push_str(&format!(
            "Generated by `hutong catalog docs` from the adapters, the standard {} and the topic plan of \
             `deploy/local/hutong.toml`; do not edit (a test keeps it in sync). How resources are requested, \
             approved and enforced: [sharing.md](sharing.md).\n\n",
            self.standard
        ));
        out.push_str("| 资源代码 | 资源名称 | 提供方 | 共享类型 | 审批 | 更新周期 | 信息项 (不予共享) |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
        for r in &self.resources {
            let none = r.items.iter().filter(|i| i.sharing == "none").count();
            out.push_str(&format!(
                "| {} | [{}](#{}) | {} ({}) | {} | {} | {} | {} ({none}) |\n",
                r.code,
                r.name,
                r.id.replace('.', ""),
                r.provider_name,
                r.provider,
                sharing_name(&r.sharing),
                r.approver,
                r.update_cycle.as_deref().unwrap_or("—"),
                r.items.len()
            ));
        }
        for r in &self.resources {
            out.push_str(&format!("\n## {}\n\n", r.id));
            out.push_str(&format!("**{}** · {} · 提供方 {} ({})\n\n", r.name, r.code, r.provider_name, r.provider));
            out.push_str(&format!("{}\n\n", r.summary));
            out.push_str(&format!(
                "- 共享类型: {} ({}); requests approved by {}\n- 更新周期: {}\n- 发布日期: {}\n",
                sharing_name(&r.sharing),
                r.sharing,
                if r.approver == "provider" { "the provider" } else { "an admin" },
                r.update_cycle.as_deref().unwrap_or("not declared"),
                r.published.as_deref().unwrap_or("—")
            ));
            let channels: Vec<String> = r
                .channels
                .iter()
                .map(|c| format!("{} `{}`{}", c.way, c.name, if c.restricted { " (restricted)" } else { "" }))
                .collect();
            out.push_str(&format!("- 共享方式: {}\n", channels.join(", ")));
            if !r.schema_ids.is_empty() {
                out.push_str(&format!(
                    "- Schemas: {}\n",
                    r.schema_ids.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                ));
            }
            if !r.items.is_empty() {
                out.push_str("\n| 信息项 | 名称 | 共享类型 | 共享条件 | 分级 | 个人信息 |\n| --- | --- | --- | --- | --- | --- |\n");
                for i in &r.items {
                    out.push_str(&format!(
                        "| `{}` | {} | {} | {} | {} | {} |\n",
                        i.id,
                        i.title,
                        sharing_name(&i.sharing),
                        i.condition,
                        i.sensitivity.as_deref().unwrap_or("—"),
                        i.pii.as_deref().unwrap_or("—")
                    ));
                }
            }
        }
        out
    }
}

/// A sharing class in Chinese.
pub fn sharing_name(class: &str) -> &'static str {
    match class {
        "unconditional" => "无条件共享",
        "none" => "不予共享",
        _ => "有条件共享",
    }
}

fn item(entity: &str, field: &str, schema: &serde_json::Value) -> Item {
    let text = |k: &str| schema[k].as_str().map(str::to_owned);
    let sharing = text("x-sharing").unwrap_or_else(|| DEFAULT_SHARING.to_owned());
    let condition = match sharing.as_str() {
        "unconditional" => "无: granted by an admin on request",
        "none" => "不予共享: never granted; only the source department sees it",
        _ => "经提供方审批: for the approved purpose, until the grant's expiry",
    };
    Item {
        id: format!("{entity}.{field}"),
        title: text("title").unwrap_or_else(|| field.to_owned()),
        sharing,
        condition: condition.to_owned(),
        sensitivity: text("x-sensitivity"),
        pii: text("x-pii"),
    }
}

fn channels_of(plan: &TopicPlan, entity: &str) -> Vec<Channel> {
    let mut out = Vec::new();
    for t in &plan.topics {
        match &t.role {
            TopicRole::Entity { entity: e, restricted } if e == entity => {
                out.push(Channel { way: "topic".into(), name: t.name.clone(), restricted: *restricted });
            }
            TopicRole::Profile { entity: e } if e == entity => {
                out.push(Channel { way: "profile-topic".into(), name: t.name.clone(), restricted: false });
                out.push(Channel { way: "profile-api".into(), name: "hutong.v1.Profiles".into(), restricted: false });
            }
            _ => {}
        }
    }
    out
}

/// The date of the standard's current version, from its CHANGELOG (`## 1.3.0 — 2026-12-06`).
fn release_date(standard: &Standard) -> Option<String> {
    let text = std::fs::read_to_string(standard.root().join("standard/CHANGELOG.md")).ok()?;
    let heading = format!("## {} ", standard.version());
    let line = text.lines().find(|l| l.starts_with(&heading))?;
    line.rsplit(' ').next().filter(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok()).map(str::to_owned)
}

/// The status of an access request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantStatus {
    /// Waiting for the approver.
    Pending,
    /// Approved: a grant until `until`.
    Approved,
    /// Refused.
    Denied,
    /// Ended early.
    Revoked,
}

impl GrantStatus {
    /// Its name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Revoked => "revoked",
        }
    }
}

/// An access request and, approved, the grant it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `AR-<yyyymmdd>-<n>`.
    pub id: String,
    /// The consumer identity (the policy's).
    pub consumer: String,
    /// The catalogue resource.
    pub resource: String,
    /// Its provider (who approves a conditional one).
    pub provider: String,
    /// The resource's sharing class when asked.
    pub sharing: String,
    /// Who approves: `provider` or `admin`.
    pub approver: String,
    /// The information items (`entity.field`) asked for and granted.
    pub fields: Vec<String>,
    /// 用途.
    pub purpose: String,
    /// 应用场景.
    pub scenario: String,
    /// The 网格 it is limited to (grid codes); empty: anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grids: Vec<String>,
    /// The last day it holds (inclusive).
    pub until: NaiveDate,
    /// Where it stands.
    pub status: GrantStatus,
    /// When it was asked (RFC 3339).
    pub requested_at: String,
    /// The reply deadline: working days after the request.
    pub due: NaiveDate,
    /// Who decided (or revoked), and when, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Grant {
    /// Whether it lets its consumer use the resource on `today`.
    pub fn active(&self, today: NaiveDate) -> bool {
        self.status == GrantStatus::Approved && today <= self.until
    }

    /// Whether it is a pending request past its reply deadline on `today`.
    pub fn overdue(&self, today: NaiveDate) -> bool {
        self.status == GrantStatus::Pending && today > self.due
    }
}

/// Why a request cannot be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No such resource.
    #[error("no resource {0:?} in the catalogue (see `hutong catalog list`)")]
    UnknownResource(String),
    /// A field the resource does not have.
    #[error("{resource} has no information item {field:?} (see `hutong catalog show {resource}`)")]
    UnknownField {
        /// The resource.
        resource: String,
        /// The field.
        field: String,
    },
    /// A 不予共享 field.
    #[error("{0} is 不予共享 (x-sharing: none): it is never granted")]
    NotShared(String),
    /// Purpose or scenario missing.
    #[error("{0} is required: a grant is for a stated purpose and scenario (用途, 应用场景)")]
    Missing(&'static str),
}

/// The fields a request for `resource` grants: those asked (each checked), or every
/// grantable one.
pub fn granted_fields(resource: &Resource, asked: &[String]) -> Result<Vec<String>, RequestError> {
    if asked.is_empty() {
        return Ok(resource.grantable().map(|i| i.id.clone()).collect());
    }
    let mut out = BTreeSet::new();
    for f in asked {
        let f = f.trim();
        let Some(item) = resource.items.iter().find(|i| i.id == f) else {
            return Err(RequestError::UnknownField { resource: resource.id.clone(), field: f.to_owned() });
        };
        if item.sharing == "none" {
            return Err(RequestError::NotShared(f.to_owned()));
        }
        out.insert(f.to_owned());
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let standard = Standard::load(&root).expect("standard");
        let adapters = Adapters::load(&root.join("departments"), &standard).expect("adapters");
        let bus = hutong_bus::BusConfig::default();
        let entities = standard.entities().map(|e| hutong_bus::EntityTopic {
            entity: e.name.clone(),
            topic: format!("hutong.{}.v{}", e.name, e.major),
            restricted: false,
        });
        let plan = TopicPlan::with_derived(
            &bus,
            entities,
            hutong_bus::DerivedTopics { profiles: vec!["person".into()], governance: true },
        );
        Catalog::build(&standard, &adapters, &plan)
    }

    #[test]
    fn every_adapter_is_a_resource_with_its_items_classes() {
        let c = catalog();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let standard = Standard::load(&root).unwrap();
        let adapters = Adapters::load(&root.join("departments"), &standard).unwrap();
        assert_eq!(c.resources.len(), adapters.iter().count() + 1, "one per adapter and the governance resource");
        let gongan = c.get("gongan.household_registration").expect("公安's registration");
        assert_eq!(gongan.provider, "gongan");
        assert_eq!(gongan.provider_name, "公安");
        assert_eq!(gongan.sharing, "conditional");
        assert_eq!(gongan.approver, "provider");
        let id = gongan.items.iter().find(|i| i.id == "person.citizen_id").expect("citizen_id");
        assert_eq!(id.sharing, "none");
        assert!(gongan.grantable().all(|i| i.id != "person.citizen_id"));
        assert!(gongan.channels.iter().any(|c| c.way == "profile-api"));
        assert!(gongan.code.starts_with("HT-gongan-"));
        for r in &c.resources {
            assert!(SHARING_CLASSES.contains(&r.sharing.as_str()), "{}", r.id);
            assert!(r.items.iter().all(|i| SHARING_CLASSES.contains(&i.sharing.as_str())), "{}", r.id);
            assert!(!r.channels.is_empty(), "{} is shared somewhere", r.id);
        }
        let codes: BTreeSet<&str> = c.resources.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(codes.len(), c.resources.len(), "资源代码 are unique");
        assert!(c.get(GOVERNANCE_RESOURCE).is_some_and(|r| r.approver == "admin"));
    }

    #[test]
    fn requests_name_real_shareable_items() {
        let c = catalog();
        let r = c.get("gongan.household_registration").unwrap();
        let all = granted_fields(r, &[]).unwrap();
        assert!(all.contains(&"person.name".to_owned()) && !all.contains(&"person.citizen_id".to_owned()));
        assert_eq!(granted_fields(r, &["person.name".into()]).unwrap(), ["person.name"]);
        assert!(matches!(granted_fields(r, &["person.citizen_id".into()]), Err(RequestError::NotShared(_))));
        assert!(matches!(granted_fields(r, &["person.nope".into()]), Err(RequestError::UnknownField { .. })));
    }

    #[test]
    fn a_grant_holds_through_its_last_day_and_only_approved() {
        let day = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let mut g = Grant {
            id: "AR-1".into(),
            consumer: "zhihui".into(),
            resource: "gongan.household_registration".into(),
            provider: "gongan".into(),
            sharing: "conditional".into(),
            approver: "provider".into(),
            fields: vec![],
            grids: vec![],
            purpose: "p".into(),
            scenario: "s".into(),
            until: day("2026-12-31"),
            status: GrantStatus::Pending,
            requested_at: "2026-12-01T09:00:00+08:00".into(),
            due: day("2026-12-15"),
            decided_by: None,
            decided_at: None,
            reason: None,
        };
        assert!(!g.active(day("2026-12-02")));
        assert!(g.overdue(day("2026-12-16")) && !g.overdue(day("2026-12-15")));
        g.status = GrantStatus::Approved;
        assert!(g.active(day("2026-12-31")) && !g.active(day("2027-01-01")));
        g.status = GrantStatus::Revoked;
        assert!(!g.active(day("2026-12-02")));
    }
}

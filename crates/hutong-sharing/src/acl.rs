//! What the Kafka brokers must enforce. Hutong is not in the path of a Kafka consumer, so the
//! grants are turned into READ ACLs for the brokers to apply: per consumer with an active grant,
//! READ and DESCRIBE on every topic its granted resources are shared on (a restricted topic,
//! with clear personal data, only under a conditional grant, approved by its owner), and READ
//! on its own consumer groups (`<consumer>.` prefixed). Nothing else: a consumer without a grant
//! has no ACL, and a topic no grant names is readable by no consumer.
//!
//! A grant limited to some 网格 gives no ACL: a topic cannot be read row by row, so such a
//! consumer reads through Hutong's APIs, which hold it to its grids.
//!
//! Principals are `User:<certificate name>`: the brokers map a client certificate's subject to
//! its CN (`ssl.principal.mapping.rules = RULE:^CN=([^,]+).*$/$1/,DEFAULT`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::Serialize;

use crate::{Catalog, Grant};

/// One ACL binding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Acl {
    /// `User:<certificate name>`.
    pub principal: String,
    /// `topic` or `group`.
    pub resource_type: &'static str,
    /// `literal` or `prefixed`.
    pub pattern_type: &'static str,
    /// The topic or group (prefix).
    pub name: String,
    /// `Read` or `Describe`.
    pub operation: &'static str,
    /// Always `Allow`: everything not allowed is denied (`allow.everyone.if.no.acl.found=false`).
    pub permission: &'static str,
    /// The grants it comes from.
    pub grants: Vec<String>,
}

impl Acl {
    /// The binding as the brokers' admin API takes it (any host).
    pub fn to_kafka(&self) -> hutong_bus::KafkaAcl {
        hutong_bus::KafkaAcl {
            principal: self.principal.clone(),
            resource_type: self.resource_type.to_owned(),
            pattern_type: self.pattern_type.to_owned(),
            name: self.name.clone(),
            operation: self.operation.to_owned(),
            permission: self.permission.to_owned(),
            host: "*".to_owned(),
        }
    }
}

/// The ACLs of every consumer, and the consumers' certificate names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AclPlan {
    /// Every binding, by principal, resource and operation.
    pub acls: Vec<Acl>,
    /// Consumer → certificate name.
    pub users: BTreeMap<String, String>,
}

impl AclPlan {
    /// The plan for the grants active on `today`; `certificates` maps each consumer identity to
    /// its certificate name (a consumer without one gets none: it cannot authenticate).
    pub fn build(
        catalog: &Catalog,
        grants: &[Grant],
        certificates: &BTreeMap<String, String>,
        today: NaiveDate,
    ) -> Self {
        let mut found: BTreeMap<(String, &'static str, &'static str, String, &'static str), BTreeSet<String>> =
            BTreeMap::new();
        let mut users = BTreeMap::new();
        // A grant limited to some 网格 cannot be enforced per row on a topic: it is served by
        // Hutong's APIs only, and gives no Kafka ACL.
        for g in grants.iter().filter(|g| g.active(today) && g.grids.is_empty()) {
            let (Some(resource), Some(cert)) = (catalog.get(&g.resource), certificates.get(&g.consumer)) else {
                continue;
            };
            users.insert(g.consumer.clone(), cert.clone());
            let principal = format!("User:{cert}");
            let mut add = |kind, pattern, name: &str, op| {
                found.entry((principal.clone(), kind, pattern, name.to_owned(), op)).or_default().insert(g.id.clone());
            };
            for t in resource.topics().filter(|t| !t.restricted || g.sharing == "conditional") {
                add("topic", "literal", &t.name, "Read");
                add("topic", "literal", &t.name, "Describe");
            }
            add("group", "prefixed", &format!("{}.", g.consumer), "Read");
        }
        let acls = found
            .into_iter()
            .map(|((principal, resource_type, pattern_type, name, operation), grants)| Acl {
                principal,
                resource_type,
                pattern_type,
                name,
                operation,
                permission: "Allow",
                grants: grants.into_iter().collect(),
            })
            .collect();
        Self { acls, users }
    }

    /// `kafka-acls.sh` commands adding every binding.
    pub fn kafka_acls(&self, bootstrap: &str) -> String {
        let mut out = String::from(
            "# Hutong's READ ACLs from the active grants (hutong access acls). Brokers need\n\
             # authorizer.class.name and allow.everyone.if.no.acl.found=false, and\n\
             # ssl.principal.mapping.rules=RULE:^CN=([^,]+).*$/$1/,DEFAULT\n",
        );
        for a in &self.acls {
            let target = match (a.resource_type, a.pattern_type) {
                ("topic", p) => format!("--topic {} --resource-pattern-type {p}", a.name),
                (_, p) => format!("--group {} --resource-pattern-type {p}", a.name),
            };
            out.push_str(&format!(
                "kafka-acls.sh --bootstrap-server {bootstrap} --add --allow-principal {} --operation {} {target}  # {}\n",
                a.principal,
                a.operation,
                a.grants.join(",")
            ));
        }
        out
    }

    /// Strimzi `KafkaUser` resources (TLS authentication, simple authorisation), one per
    /// consumer, as a multi-document YAML.
    pub fn strimzi(&self, cluster: &str, namespace: Option<&str>) -> String {
        let mut out = String::new();
        for (consumer, cert) in &self.users {
            let principal = format!("User:{cert}");
            out.push_str("---\napiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaUser\nmetadata:\n");
            out.push_str(&format!("  name: {}\n", cert.replace(['.', '_'], "-")));
            if let Some(ns) = namespace {
                out.push_str(&format!("  namespace: {ns}\n"));
            }
            out.push_str(&format!(
                "  labels:\n    strimzi.io/cluster: {cluster}\n    hutong.cn/consumer: {consumer}\n\
                 spec:\n  authentication:\n    type: tls\n  authorization:\n    type: simple\n    acls:\n"
            ));
            for a in self.acls.iter().filter(|a| a.principal == principal) {
                // Strimzi names Kafka's `prefixed` pattern `prefix`.
                let pattern = if a.pattern_type == "prefixed" { "prefix" } else { a.pattern_type };
                out.push_str(&format!(
                    "      - resource:\n          type: {}\n          name: {}\n          patternType: {}\n        \
                     operations: [{}]\n        host: \"*\"\n",
                    a.resource_type, a.name, pattern, a.operation
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, GrantStatus, Resource};

    fn resource(id: &str, sharing: &str, topics: &[(&str, bool)]) -> Resource {
        Resource {
            id: id.into(),
            code: format!("HT-{id}"),
            name: id.into(),
            provider: id.split('.').next().unwrap().into(),
            provider_name: String::new(),
            summary: String::new(),
            sharing: sharing.into(),
            approver: "provider".into(),
            update_cycle: None,
            published: None,
            items: vec![],
            channels: topics
                .iter()
                .map(|(t, r)| Channel { way: "topic".into(), name: (*t).into(), restricted: *r })
                .chain([Channel { way: "profile-api".into(), name: "hutong.v1.Profiles".into(), restricted: false }])
                .collect(),
            schema_ids: vec![],
        }
    }

    fn grant(id: &str, consumer: &str, resource: &str, sharing: &str, status: GrantStatus, until: &str) -> Grant {
        let day = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        Grant {
            id: id.into(),
            consumer: consumer.into(),
            resource: resource.into(),
            provider: String::new(),
            sharing: sharing.into(),
            approver: String::new(),
            fields: vec![],
            grids: vec![],
            purpose: "p".into(),
            scenario: "s".into(),
            until: day(until),
            status,
            requested_at: String::new(),
            due: day("2026-12-10"),
            decided_by: None,
            decided_at: None,
            reason: None,
        }
    }

    #[test]
    fn the_plan_allows_exactly_the_active_grants_topics() {
        let catalog = Catalog {
            standard: "1".into(),
            resources: vec![
                resource(
                    "gongan.household_registration",
                    "conditional",
                    &[("hutong.person.v2", false), ("hutong.person.restricted.v2", true)],
                ),
                resource(
                    "shichang.market_entity",
                    "unconditional",
                    &[("hutong.organization.v2", false), ("hutong.organization.restricted.v2", true)],
                ),
            ],
        };
        let certs: BTreeMap<String, String> = [
            ("zhihui".to_owned(), "zhihui.consumers.hutong.local".to_owned()),
            ("zongzhi".to_owned(), "zongzhi.consumers.hutong.local".to_owned()),
        ]
        .into();
        let grants = vec![
            grant(
                "AR-1",
                "zhihui",
                "gongan.household_registration",
                "conditional",
                GrantStatus::Approved,
                "2026-12-31",
            ),
            grant("AR-2", "zhihui", "shichang.market_entity", "unconditional", GrantStatus::Approved, "2026-12-31"),
            grant(
                "AR-3",
                "zongzhi",
                "gongan.household_registration",
                "conditional",
                GrantStatus::Pending,
                "2026-12-31",
            ),
            grant("AR-4", "zongzhi", "shichang.market_entity", "unconditional", GrantStatus::Approved, "2026-12-01"),
            grant(
                "AR-5",
                "zongzhi",
                "gongan.household_registration",
                "conditional",
                GrantStatus::Revoked,
                "2026-12-31",
            ),
            Grant {
                grids: vec!["330106004053002".into()],
                ..grant(
                    "AR-6",
                    "zongzhi",
                    "gongan.household_registration",
                    "conditional",
                    GrantStatus::Approved,
                    "2026-12-31",
                )
            },
        ];
        let today = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        let plan = AclPlan::build(&catalog, &grants, &certs, today);
        let got: Vec<(String, &str, String, &str)> =
            plan.acls.iter().map(|a| (a.principal.clone(), a.resource_type, a.name.clone(), a.operation)).collect();
        let user = "User:zhihui.consumers.hutong.local".to_owned();
        let expected = vec![
            (user.clone(), "group", "zhihui.".to_owned(), "Read"),
            (user.clone(), "topic", "hutong.organization.v2".to_owned(), "Describe"),
            (user.clone(), "topic", "hutong.organization.v2".to_owned(), "Read"),
            (user.clone(), "topic", "hutong.person.restricted.v2".to_owned(), "Describe"),
            (user.clone(), "topic", "hutong.person.restricted.v2".to_owned(), "Read"),
            (user.clone(), "topic", "hutong.person.v2".to_owned(), "Describe"),
            (user.clone(), "topic", "hutong.person.v2".to_owned(), "Read"),
        ];
        assert_eq!(
            got, expected,
            "pending, expired, revoked and grid-limited grants give nothing; unconditional ones no restricted topic"
        );
        assert_eq!(plan.users.keys().collect::<Vec<_>>(), ["zhihui"]);
        let group = plan.acls.iter().find(|a| a.resource_type == "group").unwrap();
        assert_eq!(group.grants, ["AR-1", "AR-2"]);
        let text = plan.kafka_acls("localhost:9092");
        assert_eq!(text.lines().filter(|l| l.starts_with("kafka-acls.sh")).count(), 7);
        let yaml = plan.strimzi("hutong", Some("city"));
        assert_eq!(yaml.matches("kind: KafkaUser").count(), 1);
        assert_eq!(yaml.matches("- resource:").count(), 7);
        // Every patternType is one Strimzi's KafkaUser CRD takes (the schema vendored for the
        // offline check of the deployment files).
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/python/strimzi_kafkauser_v1beta2.schema.json")).unwrap();
        let allowed = &schema.pointer(
            "/properties/spec/properties/authorization/properties/acls/items/properties/resource/properties/patternType/enum",
        );
        let allowed: Vec<&str> = allowed.unwrap().as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        let used: Vec<&str> = yaml.lines().filter_map(|l| l.trim().strip_prefix("patternType: ")).collect();
        assert_eq!(used.len(), 7);
        assert!(used.iter().all(|p| allowed.contains(p)), "{used:?} not all in {allowed:?}");
        assert!(used.contains(&"prefix"), "the consumer's groups by prefix");
    }
}

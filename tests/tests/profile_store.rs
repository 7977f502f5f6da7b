//! The profile store's behaviour, the same on both engines: the embedded SQLite file and
//! PostgreSQL (a throw-away cluster; deploy/test.sh installs PostgreSQL when missing). Facts are
//! applied as the consumer applies them (one transaction per batch) under the shipped rules.

use std::collections::BTreeMap;

use hutong_profiles::{Fact, Rules, Source, Store, StoreUrl};
use hutong_tests::{pg::Postgres, repo_root, shared_pki};
use serde_json::{Value, json};

fn rules() -> Rules {
    hutong_profiles::load_rules(&repo_root().join("schemas"), None).expect("the shipped rules").1
}

fn fact(entity: &str, key: &str, dept: &str, sid: &str, rev: i64, data: Option<Value>) -> Fact {
    let digest = data.as_ref().map_or("none".to_owned(), |d| format!("{:x}", d.to_string().len()));
    Fact {
        entity: entity.into(),
        entity_key: key.into(),
        source: Source {
            department: dept.into(),
            kind: format!("{dept}_kind"),
            source_id: sid.into(),
            revision: rev,
            time: format!("2024-0{}-01T00:00:00.000Z", rev.clamp(1, 9)),
            ce_id: format!("{dept}:{sid}:{rev}:{digest}:{entity}"),
        },
        data,
    }
}

const P: &str = "aa00000000000000000000000000000000000000000000000000000000000001";
const P2: &str = "aa00000000000000000000000000000000000000000000000000000000000002";

fn gongan_person(rev: i64, household: &str) -> Fact {
    fact(
        "person",
        P,
        "gongan",
        "G1",
        rev,
        Some(
            json!({"person_key": P, "name": "胡金凤", "sex": "2", "birth_date": "1948-03-08", "household_key": household}),
        ),
    )
}

fn gongan_household(rev: i64, household: &str) -> Fact {
    fact(
        "household",
        household,
        "gongan",
        "G1",
        rev,
        Some(json!({"household_key": household, "members": [{"person_key": P, "relation": "02"}]})),
    )
}

fn profiles(store: &mut Store) -> BTreeMap<(String, String), Value> {
    store.all_profiles().expect("profiles")
}

/// Two departments about one person: the authority wins the name, the loser is a conflict
/// counted for its department, every field names its source, sets keep both departments' tags.
fn merge_with_provenance(store: &mut Store, rules: &Rules) {
    let tag = |t: &str, d: &str| json!({"tag": t, "source_department": d});
    let facts = [
        gongan_person(1, "H1"),
        fact(
            "person",
            P,
            "weijian",
            "W1",
            3,
            Some(
                json!({"person_key": P, "name": "胡金风", "phone": "13800000002", "special_population": [tag("0101", "weijian")]}),
            ),
        ),
        fact(
            "person",
            P,
            "minzheng",
            "M1",
            2,
            Some(
                json!({"person_key": P, "name": "胡金凤", "special_population": [tag("0101", "weijian"), tag("0401", "minzheng")]}),
            ),
        ),
    ];
    let applied = store.apply(&facts, rules).expect("apply");
    assert_eq!(applied.applied, 3);
    let doc = applied.profiles[&("person".to_owned(), P.to_owned())].clone().expect("a profile");
    assert_eq!(doc["record"]["name"], "胡金凤");
    assert_eq!(doc["fields"]["name"]["source"]["department"], "gongan");
    assert_eq!(doc["fields"]["name"]["source"]["revision"], 1);
    assert_eq!(doc["record"]["phone"], "13800000002", "no rule: the most recent");
    assert_eq!(doc["record"]["special_population"].as_array().map(Vec::len), Some(2));
    assert_eq!(doc["sources"].as_array().map(Vec::len), Some(3));
    assert_eq!(store.profile("person", P).expect("read"), Some(doc));
    let (conflicts, per) = store.conflicts(None, None, 10).expect("conflicts");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0]["loser"]["value"], "胡金风");
    assert_eq!(per, BTreeMap::from([("weijian".to_owned(), 1)]));
    let (only_minzheng, _) = store.conflicts(None, Some("minzheng"), 10).expect("conflicts");
    assert!(only_minzheng.is_empty(), "minzheng agrees with the authority");
}

/// The same batch again (a replay after a crash), a duplicate, a stale revision: nothing changes.
fn replays_change_nothing(store: &mut Store, rules: &Rules) {
    let facts = [gongan_person(2, "H1"), gongan_household(2, "H1"), gongan_person(2, "H1")];
    store.apply(&facts, rules).expect("apply");
    let before = profiles(store);
    let again = store.apply(&facts, rules).expect("replay");
    assert_eq!(again.applied, 0, "a replay applies nothing");
    assert_eq!(again.skipped, 3);
    assert_eq!(profiles(store), before);
    // A resend of revision 1 after 2: stale.
    let stale = store.apply(&[gongan_person(1, "H-OLD")], rules).expect("stale");
    assert_eq!((stale.applied, stale.skipped), (0, 1));
    assert_eq!(profiles(store), before);
    // The touched profiles are merged (and published) again all the same: what a crash before
    // publishing left out is published on the replay.
    assert!(again.profiles.contains_key(&("person".to_owned(), P.to_owned())));
}

/// A DELETE removes only its department's fact; the last fact's DELETE removes the profile.
fn deletes_remove_their_contribution(store: &mut Store, rules: &Rules) {
    let weijian = fact(
        "person",
        P2,
        "weijian",
        "W2",
        1,
        Some(json!({"person_key": P2, "name": "蒋文杰", "phone": "13900000001"})),
    );
    let minzheng = fact(
        "person",
        P2,
        "minzheng",
        "M2",
        1,
        Some(json!({"person_key": P2, "name": "蒋文杰", "grid_code": "330106004053001"})),
    );
    store.apply(&[weijian, minzheng], rules).expect("apply");
    let gone = store.apply(&[fact("person", P2, "weijian", "W2", 2, None)], rules).expect("delete");
    let doc = gone.profiles[&("person".to_owned(), P2.to_owned())].clone().expect("minzheng's fact remains");
    assert_eq!(doc["record"].get("phone"), None, "weijian's phone went with its fact");
    assert_eq!(doc["record"]["grid_code"], "330106004053001");
    // Revision 1 of the deleted record again (a late resend): retired by the DELETE.
    let late = fact("person", P2, "weijian", "W2", 1, Some(json!({"person_key": P2, "name": "蒋文杰"})));
    assert_eq!(store.apply(&[late], rules).expect("late").applied, 0);
    let last = store.apply(&[fact("person", P2, "minzheng", "M2", 2, None)], rules).expect("delete");
    assert_eq!(last.profiles[&("person".to_owned(), P2.to_owned())], None, "no fact left: deleted");
    assert_eq!(store.profile("person", P2).expect("read"), None);
}

/// 公安 moves a person to another household (revision 3 names H2): the record's facts of
/// revision 2 are retired, H1 loses its member (and its profile), H2 has it.
fn moves_retire_the_old_facts(store: &mut Store, rules: &Rules) {
    store.apply(&[gongan_person(3, "H2"), gongan_household(3, "H2")], rules).expect("move");
    assert_eq!(store.profile("household", "H1").expect("read"), None, "H1 had only this record's fact");
    let (people, total) = store.people_of("household", "H2", 10).expect("people");
    assert_eq!(total, 1);
    assert_eq!(people[0].person_key, P);
    // Linked twice (the household lists the member, the person names the household): one entry.
    assert_eq!(people[0].link.as_array().map(Vec::len), Some(2), "{:?}", people[0].link);
    assert_eq!(people[0].profile.as_ref().map(|p| p["record"]["household_key"].clone()), Some(json!("H2")));
    assert!(store.people_of("household", "H1", 10).expect("people").0.is_empty());
}

/// "Everyone living in grid G": directly, through a building of G, through a household of G.
fn people_of_a_grid(store: &mut Store, rules: &Rules) {
    let grid = "330106004053002";
    let building = fact(
        "building",
        "LD-9",
        "zhujian",
        "FW-9-302",
        1,
        Some(
            json!({"building_key": "LD-9", "grid_code": grid, "residents": [{"person_key": P, "relation": "1", "room": "302"}]}),
        ),
    );
    let direct =
        fact("person", P2, "minzheng", "M3", 3, Some(json!({"person_key": P2, "name": "蒋文杰", "grid_code": grid})));
    store.apply(&[building, direct], rules).expect("apply");
    let (people, total) = store.people_of("grid", grid, 10).expect("grid");
    let keys: Vec<&str> = people.iter().map(|p| p.person_key.as_str()).collect();
    assert_eq!(keys, [P, P2]);
    assert_eq!(total, 2);
    assert_eq!(people[0].link[0]["room"], "302");
    let (one, total) = store.people_of("grid", grid, 1).expect("grid");
    assert_eq!((one.len(), total), (1, 2), "limited, with the total");
    assert_eq!(store.counts().expect("counts")["building"], 1);
}

/// A batch longer than the multi-row statements' chunks (cut 64 + 64 + 16 + 4 + 1 + 1 …) is
/// applied whole, in log order: 150 persons of one household (公安's fact of each, a later
/// revision of every tenth with a new name), and replayed changes nothing.
fn large_batches(store: &mut Store, rules: &Rules) {
    let household = "gongan:3301060040539999";
    let person = |i: usize, rev: i64, name: &str| {
        let key = format!("bb{i:062}");
        fact(
            "person",
            &key,
            "gongan",
            &format!("L{i}"),
            rev,
            Some(json!({"person_key": key, "name": name, "household_key": household})),
        )
    };
    let mut batch: Vec<Fact> = (0..150).map(|i| person(i, 1, "居民")).collect();
    batch.extend((0..150).step_by(10).map(|i| person(i, 2, "改名")));
    batch.push(fact(
        "household",
        household,
        "gongan",
        "L-H",
        1,
        Some(json!({"household_key": household, "members": (0..150).map(|i| json!({"person_key": format!("bb{i:062}"), "relation": "10"})).collect::<Vec<_>>()})),
    ));
    let applied = store.apply(&batch, rules).expect("a long batch");
    assert_eq!((applied.applied, applied.skipped), (batch.len() as u64, 0));
    assert_eq!(applied.profiles.len(), 151, "150 persons and their household");
    let renamed = store.profile("person", &format!("bb{:062}", 40)).expect("read").expect("person 40");
    assert_eq!(
        (renamed["record"]["name"].as_str(), renamed["fields"]["name"]["source"]["revision"].as_i64()),
        (Some("改名"), Some(2))
    );
    assert_eq!(store.profile("person", &format!("bb{:062}", 41)).expect("read").expect("41")["record"]["name"], "居民");
    let (people, total) = store.people_of("household", household, 200).expect("household");
    assert_eq!((people.len(), total), (150, 150));
    assert!(people.iter().all(|p| p.link.as_array().map(Vec::len) == Some(2)), "member, and naming it");
    let before = profiles(store);
    let again = store.apply(&batch, rules).expect("replay");
    assert_eq!((again.applied, again.skipped), (0, batch.len() as u64));
    assert_eq!(profiles(store), before);
    assert_eq!(store.people_of("household", household, 200).expect("household").1, 150, "links not doubled");
}

/// The governance tables on the engine: an event's state and alerts, the deadline tick, a
/// thread across three events with one key not on the bus yet, matching that follows a
/// resource's capacity, time to match, the outbox, the intake counts, the report's input.
fn governance(url: &StoreUrl) {
    use hutong_profiles::governance::{Clock, EventFilter, GovernanceRuntime, Reject, Submission};
    let schemas = repo_root().join("schemas");
    let standard = hutong_standard::Standard::load(&schemas).expect("standard");
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00+08:00").expect("time");
    let runtime = GovernanceRuntime {
        rules: hutong_governance::Governance::load_shipped(&schemas, &standard).expect("rules"),
        clock: Clock::Fixed(now),
    };
    let rules = rules();
    let mut store = Store::open(url).expect("open").with_governance(std::sync::Arc::new(runtime));
    let step = |s: &str, at: &str| json!({"status": s, "at": at});
    let event = |key: &str, status: &str, steps: Vec<Value>, links: Value| {
        let mut e = json!({"event_key": key, "title": "t", "category": "0504", "channel": "02", "status": status,
            "reported_at": "2026-11-02T09:00:00+08:00", "due_at": "2026-11-09T17:00:00+08:00",
            "location": {"grid_code": "330106004053001"}, "status_history": steps});
        if !links.is_null() {
            e["related_events"] = links;
        }
        e
    };
    let bounced = event(
        "rexian:T1",
        "assigned",
        vec![
            step("reported", "2026-11-02T09:00:00+08:00"),
            step("accepted", "2026-11-02T09:10:00+08:00"),
            step("assigned", "2026-11-02T10:00:00+08:00"),
            step("returned", "2026-11-03T10:00:00+08:00"),
            step("assigned", "2026-11-03T11:00:00+08:00"),
            step("returned", "2026-11-04T10:00:00+08:00"),
            step("assigned", "2026-11-04T11:00:00+08:00"),
        ],
        json!([{"event_key": "sifa:C1", "relation": "transferred"}]),
    );
    let case = event(
        "sifa:C1",
        "closed",
        vec![step("accepted", "2026-11-05T09:00:00+08:00"), step("closed", "2026-11-06T09:00:00+08:00")],
        Value::Null,
    );
    let petition = event(
        "xinfang:P1",
        "accepted",
        vec![],
        json!([{"event_key": "sifa:C1", "relation": "originates"}, {"event_key": "wangge:W9", "relation": "originates"}]),
    );
    let facts = [
        fact("event", "rexian:T1", "rexian", "T1", 1, Some(bounced)),
        fact("event", "sifa:C1", "sifa", "C1", 1, Some(case)),
        fact("event", "xinfang:P1", "xinfang", "P1", 1, Some(petition)),
    ];
    store.apply(&facts, &rules).expect("events");
    let (open, total) =
        store.events(&EventFilter { grid: "330106004053001".into(), ..Default::default() }, 10).expect("events");
    assert_eq!((open.len(), total), (2, 2), "the closed case is not open");
    assert_eq!(open[0].returned, 2);
    let (alerts, _) = store.alerts("", "", "", 100).expect("alerts");
    assert_eq!(alerts.iter().filter(|a| a["condition"] == "returned").count(), 1);
    // The clock: 提醒, 预警 and 督办 of the bounced ticket and of the open petition (both due
    // 9 November), 提醒 only of the case (closed on the 6th, after the reminder at midnight,
    // before the deadline); the next tick raises nothing new.
    assert_eq!(store.tick(now).expect("tick"), 7);
    assert_eq!(store.tick(now).expect("tick"), 0);
    let (_, per_level) = store.alerts("330106004053001", "rexian", "", 100).expect("alerts");
    assert_eq!(per_level.get("supervision"), Some(&1), "of rexian's ticket");
    let thread = store.thread("xinfang:P1").expect("thread");
    let keys: Vec<&str> = thread.events.iter().map(|e| e.event_key.as_str()).collect();
    assert_eq!(keys, ["rexian:T1", "sifa:C1", "xinfang:P1"]);
    assert_eq!(thread.missing, ["wangge:W9"]);
    assert_eq!(thread.links.len(), 3);
    // Matching follows the resource: places left, then none.
    let grid = "330106004053001";
    let request = |rev: i64, status: &str| {
        fact(
            "service_request",
            "rexian:Q1",
            "rexian",
            "Q1",
            rev,
            Some(json!({"request_key": "rexian:Q1", "category": "0201",
            "title": "助餐", "requested_at": "2026-11-10T09:00:00+08:00", "status": status, "service_area": {"grid_code": grid}})),
        )
    };
    let canteen = |rev: i64, available: i64| {
        fact(
            "service_resource",
            "minzheng:S1",
            "minzheng",
            "S1",
            rev,
            Some(json!({"resource_key": "minzheng:S1", "name": "老年食堂",
            "categories": ["0201"], "status": "available", "service_area": {"grid_codes": [grid]},
            "capacity": {"total": 80, "available": available, "unit": "person"}})),
        )
    };
    store.apply(&[request(1, "accepted"), canteen(1, 5)], &rules).expect("need and resource");
    let candidates =
        |store: &mut Store| store.matches("", false, 10).expect("matches").0[0]["candidates"].as_array().map(Vec::len);
    assert_eq!(candidates(&mut store), Some(1));
    store.apply(&[canteen(2, 0)], &rules).expect("full");
    assert_eq!(candidates(&mut store), Some(0), "rematched when the resource changed");
    assert_eq!(store.matches("", true, 10).expect("unmatched").1.get(&format!("{grid}/0201")), Some(&1));
    store.apply(&[request(2, "matched")], &rules).expect("matched");
    let (docs, _) = store.matches("", false, 10).expect("matches");
    assert_eq!(docs[0]["matched_at"], "2024-02-01T00:00:00.000Z", "the matched fact's time");
    assert_eq!(store.matches("", true, 10).expect("unmatched").0.len(), 0);
    // The outbox holds every alert and the request's last matches until marked published.
    let outbox = store.outbox(100).expect("outbox");
    assert_eq!((outbox.alerts.len(), outbox.matches.len()), (alerts.len() + 7, 1));
    store.mark_published(&outbox).expect("published");
    let empty = store.outbox(100).expect("outbox");
    assert!(empty.alerts.is_empty() && empty.matches.is_empty());
    // Intake counts, idempotent on a replay, and the report's input.
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).expect("time").with_timezone(&chrono::Utc);
    let subs = [Submission {
        department: "rexian".into(),
        kind: "hotline_ticket".into(),
        source_id: "T1".into(),
        revision: 1,
        occurred_at: at("2026-11-02T09:00:00+08:00"),
        published_at: at("2026-11-02T09:00:30+08:00"),
    }];
    let rejects = [Reject {
        event_id: "e1".into(),
        department: "rexian".into(),
        kind: "hotline_ticket".into(),
        received_at: at("2026-11-03T10:00:00+08:00"),
        rules: vec!["format:gb11643".into()],
    }];
    for _ in 0..2 {
        store.record_intake(&subs, &rejects).expect("intake");
    }
    let cycles = BTreeMap::from([(("rexian".to_owned(), "hotline_ticket".to_owned()), Some("realtime".to_owned()))]);
    let input = store
        .report_input("2026-11".parse().expect("period"), now, Default::default(), &cycles, &BTreeMap::new())
        .expect("report input");
    let rexian = input.departments.iter().find(|d| d.department == "rexian").expect("rexian");
    assert_eq!((rexian.published, rexian.rejected, rexian.latencies_s.clone()), (1, 1, vec![30]));
    assert_eq!(rexian.rejected_by_rule.get("format:gb11643"), Some(&1));
    assert_eq!(input.events.len(), 3);
    assert_eq!(
        input.supervised_by_alert,
        std::collections::BTreeSet::from(["rexian:T1".to_owned(), "xinfang:P1".to_owned()])
    );
}

/// Grants and objections are data in the store: a grant written and read back; an objection on
/// a fact is found by the fact's event id, is open, and a higher revision of the same source
/// record closes it in the transaction that applies it; a replay of the old one does not.
fn grants_and_objections(store: &mut Store, rules: &Rules) {
    let mut grant: hutong_sharing::Grant = serde_json::from_value(json!({
        "id": "", "consumer": "zhihui", "resource": "gongan.gongan_kind", "provider": "gongan",
        "sharing": "conditional", "approver": "provider", "fields": ["person.name"], "purpose": "p",
        "scenario": "s", "until": "2026-12-31", "status": "pending", "requested_at": "2026-12-01T09:00:00+08:00",
        "due": "2026-12-15"
    }))
    .expect("a grant");
    let first = store.add_grant(grant.clone()).expect("add");
    assert_eq!(first.id, "AR-0001");
    assert_eq!(store.add_grant(grant.clone()).expect("add").id, "AR-0002");
    grant.id = first.id.clone();
    grant.status = hutong_sharing::GrantStatus::Approved;
    store.put_grant(&grant).expect("decide");
    assert_eq!(store.grant("AR-0001").expect("read"), Some(grant));
    assert_eq!(store.grants_of("zhihui").expect("of").len(), 2);
    assert!(store.grants_of("jiedao").expect("of").is_empty());
    let mut used = BTreeMap::new();
    used.insert("gongan.gongan_kind".to_owned(), 3);
    store.record_usage("zhihui", &used, "2026-12-01T10:00:00+08:00").expect("usage");
    store.record_usage("zhihui", &used, "2026-12-01T11:00:00+08:00").expect("usage");
    let usage = store.usage().expect("usage");
    assert_eq!((usage[0]["queries"].as_i64(), usage[0]["records"].as_i64()), (Some(2), Some(6)));
    assert_eq!(usage[0]["last_access"], "2026-12-01T11:00:00+08:00");

    let fact = gongan_person(7, "H9");
    store.apply(std::slice::from_ref(&fact), rules).expect("apply");
    let found = store.fact_by_ce_id(&fact.source.ce_id).expect("find").expect("the current fact");
    assert_eq!((found.department.as_str(), found.source_id.as_str(), found.revision), ("gongan", "G1", 7));
    let doc = store
        .add_objection(&found, json!({"ce_id": fact.source.ce_id, "status": "open", "pointer": "/name", "reason": "r"}))
        .expect("file");
    let id = doc["id"].as_str().expect("an id").to_owned();
    let ce_ids = std::collections::BTreeSet::from([fact.source.ce_id.clone()]);
    assert_eq!(store.open_objections_on(&ce_ids).expect("open")[&fact.source.ce_id].len(), 1);
    store.apply(&[gongan_person(6, "H9")], rules).expect("a stale revision");
    assert_eq!(store.objection(&id).expect("read").expect("kept")["status"], "open");
    store.apply(&[gongan_person(8, "H9")], rules).expect("the correction");
    let closed = store.objection(&id).expect("read").expect("kept");
    assert_eq!(closed["status"], "closed", "{closed}");
    assert!(closed["resolution"].as_str().is_some_and(|r| r.contains("revision 8")));
    assert!(store.open_objections_on(&ce_ids).expect("open").is_empty());
    assert_eq!(store.objections(Some("gongan"), false).expect("all").len(), 1);
    assert!(store.objections(Some("gongan"), true).expect("open").is_empty());
}

/// With `objections-from-conflicts`, a disagreement opens one objection on the losing fact,
/// routed to its department; a replay opens no second one; the loser's correction closes it.
fn objections_from_conflicts(url: &StoreUrl, rules: &Rules) {
    const Q: &str = "aa00000000000000000000000000000000000000000000000000000000000077";
    let mut store = Store::open(url).expect("open").with_objections_from_conflicts(true);
    let person = |dept: &str, sid: &str, rev: i64, name: &str| {
        fact("person", Q, dept, sid, rev, Some(json!({"person_key": Q, "name": name, "sex": "1"})))
    };
    let batch = [person("gongan", "GQ", 1, "张伟"), person("minzheng", "MQ", 1, "张玮")];
    store.apply(&batch, rules).expect("apply");
    store.apply(&batch, rules).expect("a replay");
    let opened: Vec<Value> =
        store.objections(Some("minzheng"), true).expect("open").into_iter().filter(|o| o["entity_key"] == Q).collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!((opened[0]["pointer"].as_str(), opened[0]["filed_by"].as_str()), (Some("/name"), Some("hutong")));
    assert!(opened[0]["reason"].as_str().is_some_and(|r| r.contains("张玮") && r.contains("gongan")));
    store.apply(&[person("minzheng", "MQ", 2, "张伟")], rules).expect("the correction");
    let id = opened[0]["id"].as_str().expect("id");
    assert_eq!(store.objection(id).expect("read").expect("kept")["status"], "closed");
}

/// Every scenario, in order, on one fresh store.
fn behaviour(url: &StoreUrl) {
    let rules = rules();
    let mut store = Store::open(url).expect("open");
    merge_with_provenance(&mut store, &rules);
    replays_change_nothing(&mut store, &rules);
    deletes_remove_their_contribution(&mut store, &rules);
    moves_retire_the_old_facts(&mut store, &rules);
    people_of_a_grid(&mut store, &rules);
    large_batches(&mut store, &rules);
    grants_and_objections(&mut store, &rules);
    objections_from_conflicts(url, &rules);
    // What was written is what a second connection reads (the query side has its own).
    let mut other = Store::open(url).expect("reopen");
    assert_eq!(profiles(&mut other), profiles(&mut store));
    governance(url);
}

#[test]
fn store_behaviour_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    behaviour(&StoreUrl::Sqlite(dir.path().join("profiles.db")));
}

#[test]
fn store_behaviour_on_postgresql() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    behaviour(&pg.database("behaviour")?.parse()?);
    Ok(())
}

#[test]
fn a_store_of_another_layout_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("p.db");
    Store::open(&StoreUrl::Sqlite(path.clone()))?;
    let changed =
        rusqlite::Connection::open(&path)?.execute("UPDATE hutong_meta SET value = '999' WHERE name = 'layout'", [])?;
    assert_eq!(changed, 1);
    let refused = Store::open(&StoreUrl::Sqlite(path)).expect_err("layout 999");
    assert!(refused.to_string().contains("layout 999"), "{refused}");
    Ok(())
}

/// What older layouts were, made from a current store: layout 1 had no `profiles.digest`, and
/// layouts 1 and 2 indexed relations by object without their detail.
const OLD_LAYOUTS: [(&str, &str); 2] = [
    (
        "1",
        "ALTER TABLE profiles DROP COLUMN digest; DROP INDEX relations_by_object; \
         CREATE INDEX relations_by_object ON relations (object_entity, object_key, subject_entity, subject_key)",
    ),
    (
        "2",
        "DROP INDEX relations_by_object; \
         CREATE INDEX relations_by_object ON relations (object_entity, object_key, subject_entity, subject_key)",
    ),
];

/// A store of `layout`, made by `made` from a current one, is brought to the current layout on
/// open and keeps working; `sql` runs a statement on the database behind the store's back (the
/// first value of a `SELECT`), `index` reads the definition of `relations_by_object`.
fn migrates(url: &StoreUrl, layout: &str, made: &str, sql: &dyn Fn(&str) -> anyhow::Result<String>, index: &str) {
    let rules = rules();
    Store::open(url).unwrap().apply(&[gongan_person(1, "gongan:3301060040530021")], &rules).unwrap();
    sql(&format!("{made}; UPDATE hutong_meta SET value = '{layout}' WHERE name = 'layout'")).unwrap();
    let mut store = Store::open(url).unwrap();
    assert_eq!(sql("SELECT value FROM hutong_meta WHERE name = 'layout'").unwrap(), "3", "from layout {layout}");
    let index = sql(index).unwrap();
    assert!(index.contains("subject_key, detail)"), "from layout {layout}: {index}");
    let before = store.profile("person", P).unwrap().expect("kept");
    let (people, total) = store.people_of("household", "gongan:3301060040530021", 10).unwrap();
    assert_eq!((people.len(), total), (1, 1), "from layout {layout}: relations kept");
    assert_eq!(people[0].link[0]["via"], "person", "from layout {layout}: {:?}", people[0].link);
    store.apply(&[gongan_person(2, "gongan:3301060040530022")], &rules).unwrap();
    let after = store.profile("person", P).unwrap().expect("merged again");
    assert_ne!(before["record"]["household_key"], after["record"]["household_key"]);
    assert_eq!(
        store.people_of("household", "gongan:3301060040530022", 10).unwrap().1,
        1,
        "from layout {layout}: relations written after the migration"
    );
    assert_eq!(store.people_of("household", "gongan:3301060040530021", 10).unwrap().1, 0, "the old link gone");
}

#[test]
fn a_store_of_an_older_layout_is_brought_to_the_current_one() -> anyhow::Result<()> {
    for (layout, made) in OLD_LAYOUTS {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("p.db");
        let sql = |sql: &str| -> anyhow::Result<String> {
            let db = rusqlite::Connection::open(&path)?;
            if sql.starts_with("SELECT") {
                return Ok(db.query_row(sql, [], |r| r.get(0))?);
            }
            db.execute_batch(sql)?;
            Ok(String::new())
        };
        let index = "SELECT sql FROM sqlite_master WHERE name = 'relations_by_object'";
        migrates(&StoreUrl::Sqlite(path.clone()), layout, made, &sql, index);
    }
    let pg = Postgres::start()?;
    let index = "SELECT indexdef FROM pg_indexes WHERE indexname = 'relations_by_object'";
    for (layout, made) in OLD_LAYOUTS {
        let database = format!("layout{layout}");
        let url = pg.database(&database)?.parse()?;
        migrates(&url, layout, made, &|sql| pg.psql_in(&database, sql), index);
    }
    Ok(())
}

/// In production the store is on a PostgreSQL across the network: the connection is TLS when the
/// server offers it, `sslmode=require` insists, and the server's certificate is checked (against
/// `sslrootcert` here; the system's CAs do not know the test CA).
#[test]
fn the_store_reaches_postgresql_over_tls_and_checks_its_certificate() -> anyhow::Result<()> {
    let pki = shared_pki()?;
    let pg = Postgres::start_tls(pki)?;
    let require = format!("{}?sslmode=require", pg.url());
    let trusted: StoreUrl = format!("{require}&sslrootcert={}", pki.join("ca.pem").display()).parse()?;
    let store = Store::open(&trusted)?;
    assert_eq!(pg.psql("SELECT count(*) FROM pg_stat_ssl WHERE ssl")?, "1", "the store's connection is encrypted");
    drop(store);
    // rust-postgres's default (prefer) takes TLS when offered, and checks the server all the same.
    let prefer: StoreUrl = format!("{}?sslrootcert={}", pg.url(), pki.join("ca.pem").display()).parse()?;
    let store = Store::open(&prefer)?;
    assert_eq!(pg.psql("SELECT count(*) FROM pg_stat_ssl WHERE ssl")?, "1");
    drop(store);
    let unknown = Store::open(&require.parse()?).err().map(|e| format!("{e:?}"));
    assert!(unknown.as_deref().is_some_and(|e| e.contains("certificate verify failed")), "{unknown:?}");
    // A server without TLS: `require` refuses it.
    let plain = Postgres::start()?;
    let refused = Store::open(&format!("{}?sslmode=require", plain.url()).parse()?).err().map(|e| format!("{e:?}"));
    assert!(refused.is_some(), "sslmode=require on a server without TLS");
    Ok(())
}

//! Kafka ACLs on the brokers: describe, create and delete them through librdkafka's admin API
//! (`rd_kafka_DescribeAcls`, `rd_kafka_CreateAcls`, `rd_kafka_DeleteAcls`), which the rdkafka
//! crate does not wrap, and the reconciliation of what a cluster holds with what is wanted.
//!
//! This is the one module of Hutong with `unsafe` code: the calls into librdkafka's C API. Every
//! object made here (bindings, filters, options, the queue, events) is destroyed here, on every
//! path, by the guards below; nothing borrowed from an event outlives it (strings are copied out
//! before the event is destroyed).
//!
//! librdkafka answers a response to any of the three calls that it cannot parse (a count that
//! does not match the request's, a truncated answer: tansu 0.6 answers every `CreateAcls` with
//! no results) by failing an internal assertion (`rd_kafka_admin_response_parse`), which aborts
//! the process. Callers that may meet such a broker make every call from a child process (the
//! CLI does). librdkafka also drops DescribeAcls' top-level error (no authorizer, not
//! authorised): such an answer reads as an empty list.
#![allow(unsafe_code)]

use std::{
    collections::BTreeSet,
    ffi::{CStr, CString, c_char},
    ptr,
    time::Duration,
};

use rdkafka::{ClientConfig, admin::AdminClient, bindings as rd, client::DefaultClientContext};
use serde::{Deserialize, Serialize};

use crate::BusError;

/// One ACL binding, in the words of `kafka-acls.sh` and Strimzi (`topic`, `prefixed`, `Read`,
/// `Allow`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KafkaAcl {
    /// `User:<name>`.
    pub principal: String,
    /// `topic`, `group`, `cluster` or `transactional_id`.
    pub resource_type: String,
    /// `literal` or `prefixed`.
    pub pattern_type: String,
    /// The resource's name (or prefix).
    pub name: String,
    /// `All`, `Read`, `Write`, `Create`, `Delete`, `Alter`, `Describe`, `ClusterAction`,
    /// `DescribeConfigs`, `AlterConfigs` or `IdempotentWrite`.
    pub operation: String,
    /// `Allow` or `Deny`.
    pub permission: String,
    /// The client host it holds for (`*`: any).
    pub host: String,
}

const RESOURCE_TYPES: [(&str, rd::rd_kafka_ResourceType_t); 4] = [
    ("topic", rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC),
    ("group", rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP),
    ("cluster", rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_BROKER),
    ("transactional_id", rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID),
];

const PATTERN_TYPES: [(&str, rd::rd_kafka_ResourcePatternType_t); 2] = [
    ("literal", rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL),
    ("prefixed", rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_PREFIXED),
];

const OPERATIONS: [(&str, rd::rd_kafka_AclOperation_t); 11] = {
    use rd::rd_kafka_AclOperation_t::*;
    [
        ("All", RD_KAFKA_ACL_OPERATION_ALL),
        ("Read", RD_KAFKA_ACL_OPERATION_READ),
        ("Write", RD_KAFKA_ACL_OPERATION_WRITE),
        ("Create", RD_KAFKA_ACL_OPERATION_CREATE),
        ("Delete", RD_KAFKA_ACL_OPERATION_DELETE),
        ("Alter", RD_KAFKA_ACL_OPERATION_ALTER),
        ("Describe", RD_KAFKA_ACL_OPERATION_DESCRIBE),
        ("ClusterAction", RD_KAFKA_ACL_OPERATION_CLUSTER_ACTION),
        ("DescribeConfigs", RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS),
        ("AlterConfigs", RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS),
        ("IdempotentWrite", RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE),
    ]
};

const PERMISSIONS: [(&str, rd::rd_kafka_AclPermissionType_t); 2] = [
    ("Allow", rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW),
    ("Deny", rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_DENY),
];

/// The native value of `word` in `table`, or an error naming what is allowed.
fn native<T: Copy>(table: &[(&str, T)], word: &str, what: &str) -> Result<T, BusError> {
    table.iter().find(|(w, _)| *w == word).map(|(_, v)| *v).ok_or_else(|| BusError::Config {
        reason: format!("ACL {what} {word:?}: one of {}", table.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(", ")),
    })
}

/// The word of a native `value` (`unknown` for one outside the table).
fn word<T: Copy + PartialEq>(table: &[(&'static str, T)], value: T) -> &'static str {
    table.iter().find(|(_, v)| *v == value).map_or("unknown", |(w, _)| *w)
}

fn c_string(s: &str, what: &str) -> Result<CString, BusError> {
    CString::new(s).map_err(|_| BusError::Config { reason: format!("ACL {what} {s:?}: contains a NUL byte") })
}

/// A string librdkafka owns, copied (empty for NULL).
///
/// SAFETY (callers): `p` is NULL or a NUL-terminated string alive for the call.
unsafe fn copied(p: *const c_char) -> String {
    if p.is_null() { String::new() } else { unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned() }
}

/// An `rd_kafka_AclBinding_t` (or filter) this module made, destroyed on drop.
struct Binding(*mut rd::rd_kafka_AclBinding_t);

impl Drop for Binding {
    fn drop(&mut self) {
        // SAFETY: made by rd_kafka_AclBinding(Filter)_new, destroyed once, here.
        unsafe { rd::rd_kafka_AclBinding_destroy(self.0) }
    }
}

impl KafkaAcl {
    /// The native binding (to create) or an exact filter matching this binding only (to delete).
    fn to_native(&self, filter: bool) -> Result<Binding, BusError> {
        let restype = native(&RESOURCE_TYPES, &self.resource_type, "resource type")?;
        let pattern = native(&PATTERN_TYPES, &self.pattern_type, "pattern type")?;
        let operation = native(&OPERATIONS, &self.operation, "operation")?;
        let permission = native(&PERMISSIONS, &self.permission, "permission")?;
        if !self.principal.split_once(':').is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty()) {
            return Err(BusError::Config {
                reason: format!("ACL principal {:?}: Type:name (User:…)", self.principal)
            });
        }
        if self.name.is_empty() || self.host.is_empty() {
            return Err(BusError::Config { reason: format!("ACL {self:?}: an empty resource name or host") });
        }
        let name = c_string(&self.name, "resource name")?;
        let principal = c_string(&self.principal, "principal")?;
        let host = c_string(&self.host, "host")?;
        let mut err = [0 as c_char; 512];
        let new = if filter { rd::rd_kafka_AclBindingFilter_new } else { rd::rd_kafka_AclBinding_new };
        // SAFETY: every string is a live NUL-terminated CString; librdkafka copies them; err is a
        // writable buffer of the size given.
        let p = unsafe {
            new(
                restype,
                name.as_ptr(),
                pattern,
                principal.as_ptr(),
                host.as_ptr(),
                operation,
                permission,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if p.is_null() {
            // SAFETY: librdkafka wrote a NUL-terminated message into err.
            let reason = unsafe { copied(err.as_ptr()) };
            return Err(BusError::Config { reason: format!("ACL {self:?}: {reason}") });
        }
        Ok(Binding(p))
    }

    /// The binding librdkafka describes.
    ///
    /// SAFETY (callers): `p` is a live binding.
    unsafe fn from_native(p: *const rd::rd_kafka_AclBinding_t) -> Self {
        unsafe {
            Self {
                principal: copied(rd::rd_kafka_AclBinding_principal(p)),
                resource_type: word(&RESOURCE_TYPES, rd::rd_kafka_AclBinding_restype(p)).to_owned(),
                pattern_type: word(&PATTERN_TYPES, rd::rd_kafka_AclBinding_resource_pattern_type(p)).to_owned(),
                name: copied(rd::rd_kafka_AclBinding_name(p)),
                operation: word(&OPERATIONS, rd::rd_kafka_AclBinding_operation(p)).to_owned(),
                permission: word(&PERMISSIONS, rd::rd_kafka_AclBinding_permission_type(p)).to_owned(),
                host: copied(rd::rd_kafka_AclBinding_host(p)),
            }
        }
    }
}

/// What to change on the brokers so that the bindings Hutong manages are exactly the wanted ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclChanges {
    /// Wanted, missing on the brokers.
    pub create: Vec<KafkaAcl>,
    /// On the brokers, managed by Hutong, no longer wanted.
    pub delete: Vec<KafkaAcl>,
    /// Wanted and present.
    pub kept: usize,
    /// On the brokers but not Hutong's to manage (another principal, a topic outside Hutong's
    /// prefix, or a binding with a word librdkafka does not know): left alone.
    pub foreign: usize,
}

/// The changes that make the brokers' bindings of `managed` principals on Hutong's resources
/// (topics named `<topic_prefix>.…`, and groups) equal `wanted`. Bindings of other principals,
/// of managed principals on other topics, and any binding librdkafka described with a word it
/// does not know, are never deleted.
pub fn reconcile(
    current: &[KafkaAcl],
    wanted: &[KafkaAcl],
    managed: &BTreeSet<String>,
    topic_prefix: &str,
) -> AclChanges {
    let ours = |a: &KafkaAcl| {
        managed.contains(&a.principal)
            && [&a.resource_type, &a.pattern_type, &a.operation, &a.permission].iter().all(|w| *w != "unknown")
            && (a.resource_type == "group"
                || (a.resource_type == "topic"
                    && a.name.strip_prefix(topic_prefix).is_some_and(|r| r.starts_with('.'))))
    };
    let have: BTreeSet<&KafkaAcl> = current.iter().collect();
    let want: BTreeSet<&KafkaAcl> = wanted.iter().collect();
    AclChanges {
        create: want.iter().filter(|a| !have.contains(*a)).map(|a| (*a).clone()).collect(),
        delete: have.iter().filter(|a| ours(a) && !want.contains(*a)).map(|a| (*a).clone()).collect(),
        kept: want.iter().filter(|a| have.contains(*a)).count(),
        foreign: have.iter().filter(|a| !ours(a) && !want.contains(*a)).count(),
    }
}

/// The outcome of deleting one binding: how many bindings its exact filter matched (and the
/// broker deleted), or the broker's error.
pub type DeleteOutcome = Result<usize, String>;

/// A connection to the brokers' ACL admin API (blocking calls: run them off async threads).
pub struct AclAdmin {
    client: AdminClient<DefaultClientContext>,
    timeout: Duration,
}

impl std::fmt::Debug for AclAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclAdmin").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// The admin operations whose results this module reads.
#[derive(Clone, Copy)]
enum Op {
    Describe,
    Create,
    Delete,
}

impl Op {
    fn admin_op(self) -> rd::rd_kafka_admin_op_t {
        match self {
            Self::Describe => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBEACLS,
            Self::Create => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
            Self::Delete => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETEACLS,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Describe => "DescribeAcls",
            Self::Create => "CreateAcls",
            Self::Delete => "DeleteAcls",
        }
    }
}

/// A queue, the options and the answered event of one admin call, destroyed on drop.
struct Call {
    queue: *mut rd::rd_kafka_queue_t,
    options: *mut rd::rd_kafka_AdminOptions_t,
    event: *mut rd::rd_kafka_event_t,
}

impl Drop for Call {
    fn drop(&mut self) {
        // SAFETY: each was made by this module for this call and is destroyed once, here.
        unsafe {
            if !self.event.is_null() {
                rd::rd_kafka_event_destroy(self.event);
            }
            rd::rd_kafka_AdminOptions_destroy(self.options);
            rd::rd_kafka_queue_destroy(self.queue);
        }
    }
}

impl AclAdmin {
    /// An admin client on `config` (bootstrap servers and security settings); `timeout` bounds
    /// each call.
    pub fn new(config: &ClientConfig, timeout: Duration) -> Result<Self, BusError> {
        let client = config.create().map_err(|e| BusError::Config { reason: format!("admin client: {e}") })?;
        Ok(Self { client, timeout })
    }

    /// Starts `op` with `start(rk, options, queue)` and waits for its answer (an error when the
    /// call failed as a whole or timed out).
    fn call(
        &self,
        op: Op,
        start: impl FnOnce(*mut rd::rd_kafka_t, *mut rd::rd_kafka_AdminOptions_t, *mut rd::rd_kafka_queue_t),
    ) -> Result<Call, BusError> {
        let rk = self.client.inner().native_ptr();
        let millis = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: rk is the live client's handle; the queue and options are owned by `call`.
        let mut call = unsafe {
            Call {
                queue: rd::rd_kafka_queue_new(rk),
                options: rd::rd_kafka_AdminOptions_new(rk, op.admin_op()),
                event: ptr::null_mut(),
            }
        };
        let mut err = [0 as c_char; 512];
        // SAFETY: options is live; err is writable of the size given.
        let set =
            unsafe { rd::rd_kafka_AdminOptions_set_request_timeout(call.options, millis, err.as_mut_ptr(), err.len()) };
        if set != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // SAFETY: librdkafka wrote a NUL-terminated message into err.
            let reason = unsafe { copied(err.as_ptr()) };
            return Err(BusError::Config { reason: format!("{} timeout {:?}: {reason}", op.name(), self.timeout) });
        }
        start(rk, call.options, call.queue);
        // Admin answers come within the request timeout; the margin covers the queueing.
        // SAFETY: the queue is live.
        call.event = unsafe { rd::rd_kafka_queue_poll(call.queue, millis.saturating_add(5_000)) };
        if call.event.is_null() {
            return Err(BusError::Unavailable {
                reason: format!("{}: no answer within {:?}", op.name(), self.timeout),
            });
        }
        // SAFETY: the event is live until `call` drops.
        unsafe {
            if rd::rd_kafka_event_error(call.event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                let reason = copied(rd::rd_kafka_event_error_string(call.event));
                return Err(BusError::Unavailable { reason: format!("{}: {reason}", op.name()) });
            }
        }
        Ok(call)
    }

    /// Every ACL binding on the brokers.
    pub fn describe(&self) -> Result<Vec<KafkaAcl>, BusError> {
        let mut err = [0 as c_char; 512];
        // SAFETY: the match-anything filter; NULL name, principal and host mean any.
        let filter = unsafe {
            rd::rd_kafka_AclBindingFilter_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_ANY,
                ptr::null(),
                rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_ANY,
                ptr::null(),
                ptr::null(),
                rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ANY,
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if filter.is_null() {
            return Err(BusError::Config {
                reason: "DescribeAcls: librdkafka refused the match-anything filter".into(),
            });
        }
        let filter = Binding(filter);
        // SAFETY: librdkafka copies the filter before returning.
        let call = self.call(Op::Describe, |rk, options, queue| unsafe {
            rd::rd_kafka_DescribeAcls(rk, filter.0, options, queue)
        })?;
        // SAFETY: the result and its bindings live as long as the event, which `call` holds.
        unsafe {
            let result = rd::rd_kafka_event_DescribeAcls_result(call.event);
            if result.is_null() {
                return Err(BusError::Unavailable { reason: "DescribeAcls: no result in the answer".into() });
            }
            let mut n = 0;
            let acls = rd::rd_kafka_DescribeAcls_result_acls(result, &mut n);
            Ok((0..n).map(|i| KafkaAcl::from_native(*acls.add(i))).collect())
        }
    }

    /// Sends `acls` as bindings (`Op::Create`) or exact filters (`Op::Delete`) and returns the
    /// answered call with its `acls.len()` answers, read by `items` from the event's result.
    ///
    /// SAFETY (callers): `result` and `items` are the accessors of `op`'s result.
    unsafe fn send<X>(
        &self,
        op: Op,
        acls: &[KafkaAcl],
        result: unsafe extern "C" fn(*mut rd::rd_kafka_event_t) -> *const rd::rd_kafka_event_t,
        items: unsafe extern "C" fn(*const rd::rd_kafka_event_t, *mut usize) -> *mut *const X,
    ) -> Result<(Call, Vec<*const X>), BusError> {
        let natives = acls.iter().map(|a| a.to_native(matches!(op, Op::Delete))).collect::<Result<Vec<_>, _>>()?;
        let mut raw: Vec<*mut rd::rd_kafka_AclBinding_t> = natives.iter().map(|b| b.0).collect();
        // SAFETY: librdkafka copies the bindings before returning; `natives` frees them after.
        let call = self.call(op, |rk, options, queue| unsafe {
            match op {
                Op::Delete => rd::rd_kafka_DeleteAcls(rk, raw.as_mut_ptr(), raw.len(), options, queue),
                _ => rd::rd_kafka_CreateAcls(rk, raw.as_mut_ptr(), raw.len(), options, queue),
            }
        })?;
        // SAFETY: the result and its items live as long as the event, which `call` holds; the
        // pointers are handed out with it.
        unsafe {
            let r = result(call.event);
            if r.is_null() {
                return Err(BusError::Unavailable { reason: format!("{}: no result in the answer", op.name()) });
            }
            let mut n = 0;
            let found = items(r, &mut n);
            if n != acls.len() {
                return Err(BusError::Unavailable {
                    reason: format!("{}: {n} answers for {} bindings", op.name(), acls.len()),
                });
            }
            let answers = (0..n).map(|i| *found.add(i)).collect();
            Ok((call, answers))
        }
    }

    /// Creates `acls`; per binding, `None` or the broker's error.
    pub fn create(&self, acls: &[KafkaAcl]) -> Result<Vec<Option<String>>, BusError> {
        if acls.is_empty() {
            return Ok(Vec::new());
        }
        // SAFETY: CreateAcls' accessors; the answers are read while `_call` holds the event.
        unsafe {
            let (_call, answers) =
                self.send(Op::Create, acls, rd::rd_kafka_event_CreateAcls_result, rd::rd_kafka_CreateAcls_result_acls)?;
            Ok(answers
                .into_iter()
                .map(|a| {
                    let e = rd::rd_kafka_acl_result_error(a);
                    (!e.is_null()).then(|| copied(rd::rd_kafka_error_string(e)))
                })
                .collect())
        }
    }

    /// Deletes each of `acls` by an exact filter (so nothing else is touched).
    pub fn delete(&self, acls: &[KafkaAcl]) -> Result<Vec<DeleteOutcome>, BusError> {
        if acls.is_empty() {
            return Ok(Vec::new());
        }
        // SAFETY: DeleteAcls' accessors; the answers are read while `_call` holds the event.
        unsafe {
            let (_call, answers) = self.send(
                Op::Delete,
                acls,
                rd::rd_kafka_event_DeleteAcls_result,
                rd::rd_kafka_DeleteAcls_result_responses,
            )?;
            Ok(answers
                .into_iter()
                .map(|r| {
                    let e = rd::rd_kafka_DeleteAcls_result_response_error(r);
                    if !e.is_null() {
                        return Err(copied(rd::rd_kafka_error_string(e)));
                    }
                    // Each binding the filter matched carries its own error, if the broker
                    // could not delete it.
                    let mut matched = 0;
                    let found = rd::rd_kafka_DeleteAcls_result_response_matching_acls(r, &mut matched);
                    match (0..matched).map(|j| rd::rd_kafka_AclBinding_error(*found.add(j))).find(|e| !e.is_null()) {
                        Some(e) => Err(copied(rd::rd_kafka_error_string(e))),
                        None => Ok(matched),
                    }
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(principal: &str, resource_type: &str, pattern: &str, name: &str, op: &str) -> KafkaAcl {
        KafkaAcl {
            principal: principal.into(),
            resource_type: resource_type.into(),
            pattern_type: pattern.into(),
            name: name.into(),
            operation: op.into(),
            permission: "Allow".into(),
            host: "*".into(),
        }
    }

    #[test]
    fn bindings_and_filters_reach_librdkafka_as_written() {
        let cases = [
            acl("User:zhihui.consumers.hutong.local", "topic", "literal", "hutong.person.v2", "Read"),
            acl("User:zhihui.consumers.hutong.local", "group", "prefixed", "zhihui.", "Read"),
            KafkaAcl {
                permission: "Deny".into(),
                host: "10.0.0.7".into(),
                ..acl("User:x", "cluster", "literal", "kafka-cluster", "IdempotentWrite")
            },
            acl("User:y", "transactional_id", "prefixed", "t-", "DescribeConfigs"),
        ];
        for case in cases {
            for filter in [false, true] {
                let native = case.to_native(filter).unwrap();
                // SAFETY: a live binding made just above.
                let back = unsafe { KafkaAcl::from_native(native.0) };
                assert_eq!(back, case, "filter: {filter}");
            }
        }
    }

    #[test]
    fn words_librdkafka_does_not_know_are_refused_before_any_call() {
        let good = acl("User:a", "topic", "literal", "hutong.person.v2", "Read");
        for (bad, says) in [
            (KafkaAcl { operation: "read".into(), ..good.clone() }, "operation \"read\": one of All, Read"),
            (KafkaAcl { resource_type: "topics".into(), ..good.clone() }, "resource type \"topics\""),
            (KafkaAcl { pattern_type: "match".into(), ..good.clone() }, "pattern type \"match\""),
            (KafkaAcl { permission: "allow".into(), ..good.clone() }, "permission \"allow\""),
            (KafkaAcl { name: "a\0b".into(), ..good.clone() }, "NUL"),
        ] {
            let err = bad.to_native(false).err().expect("refused").to_string();
            assert!(err.contains(says), "{err}");
        }
        let err = KafkaAcl { principal: String::new(), ..good }.to_native(false).err().expect("refused").to_string();
        assert!(err.contains("principal"), "{err}");
    }

    #[test]
    fn reconcile_touches_only_hutongs_bindings() {
        let zhihui = "User:zhihui.consumers.hutong.local";
        let zongzhi = "User:zongzhi.consumers.hutong.local";
        let managed: BTreeSet<String> = [zhihui.to_owned(), zongzhi.to_owned()].into();
        let current = vec![
            acl(zhihui, "topic", "literal", "hutong.person.v2", "Read"),
            acl(zhihui, "topic", "literal", "hutong.person.v2", "Describe"),
            // revoked: zongzhi's grant is gone
            acl(zongzhi, "topic", "literal", "hutong.person.v2", "Read"),
            acl(zongzhi, "group", "prefixed", "zongzhi.", "Read"),
            // not Hutong's: another principal, and a managed principal on a topic outside the prefix
            acl("User:gateway.hutong.local", "topic", "prefixed", "hutong.", "Write"),
            acl(zhihui, "topic", "literal", "other.team.events", "Read"),
            acl(zhihui, "topic", "literal", "hutongx.person", "Read"),
            acl(zhihui, "topic", "literal", "hutong.person.v2", "unknown"),
        ];
        let wanted = vec![
            acl(zhihui, "topic", "literal", "hutong.person.v2", "Read"),
            acl(zhihui, "topic", "literal", "hutong.person.v2", "Describe"),
            acl(zhihui, "group", "prefixed", "zhihui.", "Read"),
        ];
        let changes = reconcile(&current, &wanted, &managed, "hutong");
        assert_eq!(changes.create, vec![acl(zhihui, "group", "prefixed", "zhihui.", "Read")]);
        assert_eq!(
            changes.delete,
            vec![
                acl(zongzhi, "group", "prefixed", "zongzhi.", "Read"),
                acl(zongzhi, "topic", "literal", "hutong.person.v2", "Read"),
            ]
        );
        assert_eq!((changes.kept, changes.foreign), (2, 4), "a binding with an unknown word is never deleted");
        // Applied, the next reconcile has nothing to do.
        let after: Vec<KafkaAcl> =
            current.iter().filter(|a| !changes.delete.contains(a)).chain(&changes.create).cloned().collect();
        let again = reconcile(&after, &wanted, &managed, "hutong");
        assert!(again.create.is_empty() && again.delete.is_empty(), "{again:?}");
        assert_eq!(again.kept, 3);
    }
}

//! A Kafka broker that speaks only what ACL administration needs (ApiVersions, Metadata,
//! DescribeAcls, CreateAcls, DeleteAcls) and keeps its ACLs in memory, decoding and encoding
//! with the `kafka-protocol` crate. The local broker, tansu 0.6, neither stores ACLs nor answers
//! CreateAcls with a result per binding, and librdkafka's mock cluster has no ACL API, so
//! `hutong access acls --apply` is tested against this one, over librdkafka's real client.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    messages::{
        ApiKey, ApiVersionsResponse, BrokerId, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest,
        DeleteAclsResponse, DescribeAclsRequest, DescribeAclsResponse, MetadataRequest, MetadataResponse,
        RequestHeader, ResponseHeader,
        api_versions_response::ApiVersion,
        create_acls_response::AclCreationResult,
        delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl},
        describe_acls_response::{AclDescription, DescribeAclsResource},
        metadata_response::MetadataResponseBroker,
    },
    protocol::{Decodable, Encodable, StrBytes},
};

/// One stored binding, in the protocol's codes (resource type 2 topic, 3 group; pattern 3
/// literal, 4 prefixed; operation 3 Read, 8 Describe; permission 3 Allow).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredAcl {
    /// Resource type code.
    pub resource_type: i8,
    /// Resource name.
    pub name: String,
    /// Pattern type code.
    pub pattern_type: i8,
    /// `User:…`.
    pub principal: String,
    /// Host.
    pub host: String,
    /// Operation code.
    pub operation: i8,
    /// Permission code.
    pub permission: i8,
}

/// A filter of DescribeAcls and DeleteAcls (1 = any; a missing string = any).
struct Filter<'a> {
    resource_type: i8,
    name: Option<&'a str>,
    pattern_type: i8,
    principal: Option<&'a str>,
    host: Option<&'a str>,
    operation: i8,
    permission: i8,
}

impl Filter<'_> {
    fn matches(&self, a: &StoredAcl) -> bool {
        let code = |want: i8, have: i8| want == 1 || want == have;
        let text = |want: Option<&str>, have: &str| want.is_none_or(|w| w == have);
        code(self.resource_type, a.resource_type)
            && text(self.name, &a.name)
            // 2 = MATCH: any pattern whose resource the name matches; this broker takes it as any.
            && (self.pattern_type == 2 || code(self.pattern_type, a.pattern_type))
            && text(self.principal, &a.principal)
            && text(self.host, &a.host)
            && code(self.operation, a.operation)
            && code(self.permission, a.permission)
    }
}

/// The broker: its address, its ACLs, and the API keys of the requests it answered.
#[derive(Debug, Clone)]
pub struct AclBroker {
    /// `127.0.0.1:port`.
    pub bootstrap: String,
    acls: Arc<Mutex<Vec<StoredAcl>>>,
    seen: Arc<Mutex<Vec<ApiKey>>>,
}

impl AclBroker {
    /// Listens on a free loopback port, holding `acls` to begin with.
    pub fn start(acls: Vec<StoredAcl>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let broker =
            Self { bootstrap: format!("127.0.0.1:{port}"), acls: Arc::new(Mutex::new(acls)), seen: Arc::default() };
        let shared = broker.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let conn = shared.clone();
                std::thread::spawn(move || {
                    // A closed connection ends its thread; nothing else to do with the error.
                    let _ = conn.serve(stream, port);
                });
            }
        });
        Ok(broker)
    }

    /// The ACLs it holds, sorted.
    pub fn acls(&self) -> Vec<StoredAcl> {
        let mut all = self.acls.lock().expect("acls").clone();
        all.sort();
        all
    }

    /// The requests it answered, in order.
    pub fn seen(&self) -> Vec<ApiKey> {
        self.seen.lock().expect("seen").clone()
    }

    fn serve(&self, mut stream: TcpStream, port: u16) -> anyhow::Result<()> {
        loop {
            let mut size = [0u8; 4];
            stream.read_exact(&mut size)?;
            let mut frame = vec![0u8; usize::try_from(i32::from_be_bytes(size)).context("frame size")?];
            stream.read_exact(&mut frame)?;
            anyhow::ensure!(frame.len() >= 4, "short frame");
            let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]]))
                .map_err(|()| anyhow::anyhow!("unknown API key"))?;
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let mut body = Bytes::from(frame);
            let header = RequestHeader::decode(&mut body, key.request_header_version(version))?;
            self.seen.lock().expect("seen").push(key);
            let mut out = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, key.response_header_version(version))?;
            match key {
                ApiKey::ApiVersions => {
                    let range = |key: ApiKey, min, max| {
                        ApiVersion::default().with_api_key(key as i16).with_min_version(min).with_max_version(max)
                    };
                    let answer = ApiVersionsResponse::default().with_api_keys(vec![
                        range(ApiKey::ApiVersions, 0, 3),
                        range(ApiKey::Metadata, 0, 12),
                        range(ApiKey::DescribeAcls, 1, 3),
                        range(ApiKey::CreateAcls, 1, 3),
                        range(ApiKey::DeleteAcls, 1, 3),
                    ]);
                    anyhow::ensure!(version <= 3, "ApiVersions v{version}");
                    answer.encode(&mut out, version)?;
                }
                ApiKey::Metadata => {
                    MetadataRequest::decode(&mut body, version)?;
                    MetadataResponse::default()
                        .with_brokers(vec![
                            MetadataResponseBroker::default()
                                .with_node_id(BrokerId(1))
                                .with_host(StrBytes::from_static_str("127.0.0.1"))
                                .with_port(i32::from(port)),
                        ])
                        .with_cluster_id(Some(StrBytes::from_static_str("acl-broker")))
                        .with_controller_id(BrokerId(1))
                        .encode(&mut out, version)?;
                }
                ApiKey::DescribeAcls => {
                    let r = DescribeAclsRequest::decode(&mut body, version)?;
                    let filter = Filter {
                        resource_type: r.resource_type_filter,
                        name: r.resource_name_filter.as_deref(),
                        pattern_type: r.pattern_type_filter,
                        principal: r.principal_filter.as_deref(),
                        host: r.host_filter.as_deref(),
                        operation: r.operation,
                        permission: r.permission_type,
                    };
                    let mut resources: Vec<DescribeAclsResource> = Vec::new();
                    for a in self.acls().iter().filter(|a| filter.matches(a)) {
                        let description = AclDescription::default()
                            .with_principal(a.principal.clone().into())
                            .with_host(a.host.clone().into())
                            .with_operation(a.operation)
                            .with_permission_type(a.permission);
                        match resources.iter_mut().find(|r| {
                            (r.resource_type, r.resource_name.as_str(), r.pattern_type)
                                == (a.resource_type, &a.name, a.pattern_type)
                        }) {
                            Some(r) => r.acls.push(description),
                            None => resources.push(
                                DescribeAclsResource::default()
                                    .with_resource_type(a.resource_type)
                                    .with_resource_name(a.name.clone().into())
                                    .with_pattern_type(a.pattern_type)
                                    .with_acls(vec![description]),
                            ),
                        }
                    }
                    DescribeAclsResponse::default().with_resources(resources).encode(&mut out, version)?;
                }
                ApiKey::CreateAcls => {
                    let r = CreateAclsRequest::decode(&mut body, version)?;
                    let mut acls = self.acls.lock().expect("acls");
                    let mut results = Vec::new();
                    for c in r.creations {
                        let acl = StoredAcl {
                            resource_type: c.resource_type,
                            name: c.resource_name.to_string(),
                            pattern_type: c.resource_pattern_type,
                            principal: c.principal.to_string(),
                            host: c.host.to_string(),
                            operation: c.operation,
                            permission: c.permission_type,
                        };
                        // As Kafka: creating a binding that exists is no error and adds nothing.
                        if !acls.contains(&acl) {
                            acls.push(acl);
                        }
                        results.push(AclCreationResult::default());
                    }
                    CreateAclsResponse::default().with_results(results).encode(&mut out, version)?;
                }
                ApiKey::DeleteAcls => {
                    let r = DeleteAclsRequest::decode(&mut body, version)?;
                    let mut acls = self.acls.lock().expect("acls");
                    let mut results = Vec::new();
                    for f in &r.filters {
                        let filter = Filter {
                            resource_type: f.resource_type_filter,
                            name: f.resource_name_filter.as_deref(),
                            pattern_type: f.pattern_type_filter,
                            principal: f.principal_filter.as_deref(),
                            host: f.host_filter.as_deref(),
                            operation: f.operation,
                            permission: f.permission_type,
                        };
                        let (gone, kept): (Vec<StoredAcl>, Vec<StoredAcl>) =
                            acls.drain(..).partition(|a| filter.matches(a));
                        *acls = kept;
                        results.push(
                            DeleteAclsFilterResult::default().with_matching_acls(
                                gone.into_iter()
                                    .map(|a| {
                                        DeleteAclsMatchingAcl::default()
                                            .with_resource_type(a.resource_type)
                                            .with_resource_name(a.name.into())
                                            .with_pattern_type(a.pattern_type)
                                            .with_principal(a.principal.into())
                                            .with_host(a.host.into())
                                            .with_operation(a.operation)
                                            .with_permission_type(a.permission)
                                    })
                                    .collect(),
                            ),
                        );
                    }
                    DeleteAclsResponse::default().with_filter_results(results).encode(&mut out, version)?;
                }
                other => anyhow::bail!("{other:?} is not served here"),
            }
            stream.write_all(&i32::try_from(out.len())?.to_be_bytes())?;
            stream.write_all(&out)?;
        }
    }
}

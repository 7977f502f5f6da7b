//! Where a fact goes: its partition from the entity key alone, with the
//! murmur2 hash Kafka's Java clients use for keys, so every fact of one
//! entity meets in one partition and consumers in any language can
//! co-partition other topics keyed by the entity key; and its Kafka key,
//! which names the fact's source so compaction keeps every source's latest.

/// Kafka's murmur2 of `data` (`org.apache.kafka.common.utils.Utils.murmur2`, seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(&b) = rest.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions`, as Kafka's Java default partitioner picks it for
/// a keyed record: `toPositive(murmur2(key)) % partitions`.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    (murmur2(key.as_bytes()) & 0x7fff_ffff) % partitions.max(1)
}

/// The Kafka key of one source's fact about an entity: the JSON array
/// `["<entity key>","<department>","<kind>","<source id>"]`. Compaction keeps the latest fact of
/// every source record, and a DELETE (a tombstone on this key) removes only that record's fact.
pub fn fact_key(entity_key: &str, department: &str, kind: &str, source_id: &str) -> String {
    serde_json::to_string(&[entity_key, department, kind, source_id]).expect("strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's `UtilsTest.testMurmur2` (apache/kafka, clients/src/test/java/org/apache/kafka/common/utils).
    #[test]
    fn murmur2_matches_kafkas_java_client() {
        for (input, expected) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(input.as_bytes()), expected, "{input}");
        }
        assert_eq!(partition_for("abc", 3), 479_470_107 % 3);
        assert_eq!(partition_for("21", 3), (-973_932_308i32 & 0x7fff_ffff) % 3);
    }

    #[test]
    fn fact_keys_name_their_source_and_parse_back() {
        let k = fact_key("8f3a", "gongan", "household_registration", "HJ\"1\"");
        assert_eq!(k, r#"["8f3a","gongan","household_registration","HJ\"1\""]"#);
        let parsed: Vec<String> = serde_json::from_str(&k).unwrap();
        assert_eq!(parsed, ["8f3a", "gongan", "household_registration", "HJ\"1\""]);
    }
}

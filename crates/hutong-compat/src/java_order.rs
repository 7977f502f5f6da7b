//! Iteration order of `java.util.HashMap`/`HashSet` over string keys.
//!
//! Confluent's checker walks properties and dependencies through Java hash sets, so the order in
//! which it reports changes is the hash-bucket order. Reproducing it makes our change lists line up
//! with Confluent's; it never affects whether a change is reported.

/// `java.lang.String#hashCode`.
fn string_hash(s: &str) -> u32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    h as u32
}

/// The bucket a key lands in for a table of `capacity` (a power of two).
fn bucket(s: &str, capacity: usize) -> usize {
    let h = string_hash(s);
    ((h ^ (h >> 16)) as usize) & (capacity - 1)
}

/// Grows `capacity` the way `HashMap` does while `len` entries are inserted.
fn grown(mut capacity: usize, len: usize) -> usize {
    while len > capacity * 3 / 4 {
        capacity *= 2;
    }
    capacity
}

fn sort_by_bucket(keys: Vec<String>, capacity: usize) -> Vec<String> {
    let mut keyed: Vec<(usize, String)> = keys.into_iter().map(|k| (bucket(&k, capacity), k)).collect();
    // Stable: keys sharing a bucket stay in insertion order, as in Java's bucket lists.
    keyed.sort_by_key(|(b, _)| *b);
    keyed.into_iter().map(|(_, k)| k).collect()
}

/// Order of a `HashMap` filled by inserting `keys` one by one.
pub(crate) fn map_order<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let keys: Vec<String> = keys.into_iter().map(str::to_owned).collect();
    let capacity = grown(16, keys.len());
    sort_by_bucket(keys, capacity)
}

/// Order of `new HashSet<>(first); set.addAll(second)` where both are maps filled key by key.
pub(crate) fn union_order<'a>(
    first: impl IntoIterator<Item = &'a str>,
    second: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let first = map_order(first);
    let second = map_order(second);
    let initial = (((first.len() as f32) / 0.75) as usize + 1).max(16).next_power_of_two();
    let mut keys = first;
    for k in second {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let capacity = grown(initial, keys.len());
    sort_by_bucket(keys, capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash() {
        assert_eq!(string_hash("foo") as i32, 101574);
        assert_eq!(string_hash("bar") as i32, 97299);
        assert_eq!(string_hash("") as i32, 0);
    }

    #[test]
    fn bucket_order_matches_java() {
        // In Java, `new HashSet<>(List.of("foo", "bar"))` iterates bar, foo.
        assert_eq!(map_order(["foo", "bar"]), vec!["bar", "foo"]);
        assert_eq!(union_order(["foo"], ["bar"]), vec!["bar", "foo"]);
    }
}

//! The comparison rules of Confluent's `SchemaDiff` and its per-type helpers, applied to the
//! model built by [`crate::model`].

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::changes::{Changes, Diff};
use crate::java_order;
use crate::kinds::ChangeKind as K;
use crate::model::{ArraySchema, Criterion, Doc, EMPTY, Kind, Node, NodeId, NumberSchema, ObjectSchema, StringSchema};
use crate::regex::pattern_finds;

/// A node of one of the two documents under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct N {
    doc: usize,
    id: NodeId,
}

impl N {
    /// Another node of the same document.
    fn with(self, id: NodeId) -> N {
        N { doc: self.doc, id }
    }
}

/// Changes being collected for the current pair, in order.
type Diffs = Vec<Changes>;

fn here(kind: K) -> Changes {
    Changes::one(kind, &[])
}

fn at(kind: K, segments: &[&str]) -> Changes {
    Changes::one(kind, segments)
}

fn compatible(changes: &Changes) -> bool {
    changes.is_compatible()
}

/// Appends `changes` to `out`, relocated under `prefix`.
fn extend_at(out: &mut Diffs, prefix: &[&str], changes: Changes) {
    out.push(changes.under(prefix));
}

/// Reports an added/removed/increased/decreased numeric limit at `keyword`.
fn compare_limit(
    out: &mut Diffs,
    keyword: &str,
    original: Option<f64>,
    update: Option<f64>,
    [added, removed, increased, decreased]: [K; 4],
) {
    let kind = match (original, update) {
        (None, Some(_)) => added,
        (Some(_), None) => removed,
        (Some(a), Some(b)) if a < b => increased,
        (Some(a), Some(b)) if a > b => decreased,
        _ => return,
    };
    out.push(at(kind, &[keyword]));
}

/// Whether `x` is an integer multiple of `of`.
fn is_multiple(x: f64, of: f64) -> bool {
    if of == 0.0 {
        return false;
    }
    let q = x / of;
    (q - q.round()).abs() < 1e-9
}

fn contains_all(haystack: &[Value], needles: &[Value]) -> bool {
    needles.iter().all(|n| haystack.contains(n))
}

/// Maximum-cardinality bipartite matching (augmenting paths); returns `left -> right`.
fn max_matching(left: usize, right: usize, adjacency: &[Vec<usize>]) -> Vec<Option<usize>> {
    fn augment(l: usize, adjacency: &[Vec<usize>], seen: &mut [bool], owner: &mut [Option<usize>]) -> bool {
        for &r in &adjacency[l] {
            if seen[r] {
                continue;
            }
            seen[r] = true;
            if owner[r].is_none_or(|other| augment(other, adjacency, seen, owner)) {
                owner[r] = Some(l);
                return true;
            }
        }
        false
    }
    let mut owner: Vec<Option<usize>> = vec![None; right];
    for l in 0..left {
        let mut seen = vec![false; right];
        augment(l, adjacency, &mut seen, &mut owner);
    }
    let mut matched = vec![None; left];
    for (r, l) in owner.iter().enumerate() {
        if let Some(l) = l {
            matched[*l] = Some(r);
        }
    }
    matched
}

/// Most (original, update) pairs that may be under comparison at once; see [`Differ::compare`].
pub(crate) const MAX_DEPTH: usize = 16_384;

/// Compares an original document with an update.
pub(crate) struct Differ<'a> {
    docs: [&'a Doc; 2],
    /// Results per (original, update) pair, shared across branches (as Confluent's context).
    memo: HashMap<(N, N), Changes>,
    /// Pairs on the comparison stack; meeting one again is a recursive cycle, taken as equal.
    active: HashSet<(N, N)>,
}

impl<'a> Differ<'a> {
    pub(crate) fn new(original: &'a Doc, update: &'a Doc) -> Differ<'a> {
        Differ { docs: [original, update], memo: HashMap::new(), active: HashSet::new() }
    }

    /// All changes from the original document's root to the update's root.
    pub(crate) fn run(&mut self) -> Vec<Diff> {
        let o = N { doc: 0, id: self.docs[0].root };
        let u = N { doc: 1, id: self.docs[1].root };
        self.compare(o, u).flatten()
    }

    fn node(&self, n: N) -> &'a Node {
        let doc: &'a Doc = self.docs[n.doc];
        &doc.nodes[n.id]
    }

    fn kind(&self, n: N) -> &'a Kind {
        &self.node(n).kind
    }

    /// Follows `$ref`s to the referred schema (a reference cycle resolves to the empty schema).
    fn deref(&self, mut n: N) -> N {
        for _ in 0..=self.docs[n.doc].nodes.len() {
            match self.kind(n) {
                Kind::Ref(target) => n = n.with(*target),
                _ => return n,
            }
        }
        n.with(EMPTY)
    }

    fn compare_opt(&mut self, original: Option<N>, update: Option<N>) -> Changes {
        match (original, update) {
            (None, None) => Changes::none(),
            (None, Some(_)) => here(K::SchemaAdded),
            (Some(_), None) => here(K::SchemaRemoved),
            (Some(o), Some(u)) => self.compare(o, u),
        }
    }

    fn compare(&mut self, original: N, update: N) -> Changes {
        let key = (self.deref(original), self.deref(update));
        if let Some(cached) = self.memo.get(&key) {
            return cached.clone();
        }
        if self.active.len() >= MAX_DEPTH {
            // Far deeper than any real schema needs. Confluent fails with a StackOverflowError
            // here; reject conservatively instead of risking a false "compatible".
            return here(K::TypeChanged);
        }
        if !self.active.insert(key) {
            return Changes::none();
        }
        let diffs = self.compare_schemas(key.0, key.1);
        self.active.remove(&key);
        self.memo.insert(key, diffs.clone());
        diffs
    }

    /// `SchemaDiff.compare` for two dereferenced schemas.
    fn compare_schemas(&mut self, o: N, u: N) -> Changes {
        let on = self.node(o);
        let un = self.node(u);
        match (&on.kind, &un.kind) {
            (ok, Kind::Combined(criterion, subs)) if !matches!(ok, Kind::Combined(..)) => {
                if subs.len() == 1 {
                    // A singleton union is compared with its only member.
                    let d = self.compare(o, u.with(subs[0]));
                    if compatible(&d) {
                        return d;
                    }
                } else if matches!(criterion, Criterion::Any | Criterion::One) {
                    // Turning a schema into a union that contains a compatible member.
                    for &s in subs {
                        let d = self.compare(o, u.with(s));
                        if compatible(&d) {
                            return Changes::concat(vec![d, here(K::SumTypeExtended)]);
                        }
                    }
                }
            }
            (Kind::Combined(criterion, subs), uk) if !matches!(uk, Kind::Combined(..)) => {
                if subs.len() == 1 {
                    let d = self.compare(o.with(subs[0]), u);
                    if compatible(&d) {
                        return d;
                    }
                } else if *criterion == Criterion::All {
                    // Dropping all but one compatible member of an `allOf`.
                    for &s in subs {
                        let d = self.compare(o.with(s), u);
                        if compatible(&d) {
                            return Changes::concat(vec![d, here(K::ProductTypeNarrowed)]);
                        }
                    }
                }
            }
            _ => {}
        }

        if on.kind.class() != un.kind.class() {
            if matches!(on.kind, Kind::False) || un.kind.is_empty_schema() {
                return Changes::none();
            }
            let bytes = |n: &Node| n.connect_type.as_deref() == Some("bytes");
            if bytes(on) && bytes(un) {
                return Changes::none();
            }
            return here(K::TypeChanged);
        }

        let mut out = Vec::new();
        if on.id != un.id {
            out.push(here(K::IdChanged));
        }
        if on.title != un.title {
            out.push(here(K::TitleChanged));
        }
        if on.description != un.description {
            out.push(here(K::DescriptionChanged));
        }
        if on.default != un.default {
            out.push(here(K::DefaultChanged));
        }
        match (&on.kind, &un.kind) {
            (Kind::String(a), Kind::String(b)) => compare_string(&mut out, a, b),
            (Kind::Number(a), Kind::Number(b)) => compare_number(&mut out, a, b),
            (Kind::Const(a), Kind::Const(b)) if a != b => {
                out.push(at(K::EnumArrayChanged, &["const"]));
            }
            (Kind::Enum(a), Kind::Enum(b)) => {
                let same = contains_all(a, b) && contains_all(b, a);
                if !same {
                    let kind = if contains_all(b, a) {
                        K::EnumArrayExtended
                    } else if contains_all(a, b) {
                        K::EnumArrayNarrowed
                    } else {
                        K::EnumArrayChanged
                    };
                    out.push(at(kind, &["enum"]));
                }
            }
            (Kind::Combined(oc, os), Kind::Combined(uc, us)) => {
                self.compare_combined(&mut out, o, u, (*oc, os), (*uc, us));
            }
            (Kind::Not(a), Kind::Not(b)) => {
                // `not` reverses the direction of compatibility.
                let d = self.compare(u.with(*b), o.with(*a));
                let kind = if compatible(&d) { K::NotTypeNarrowed } else { K::NotTypeExtended };
                out.push(at(kind, &["not"]));
            }
            (Kind::Object(a), Kind::Object(b)) => self.compare_object(&mut out, o, u, a, b),
            (Kind::Array(a), Kind::Array(b)) => self.compare_array(&mut out, o, u, a, b),
            (Kind::Unresolved(a), Kind::Unresolved(b)) if a != b => {
                out.push(here(K::TypeChanged));
            }
            _ => {}
        }
        Changes::concat(out)
    }

    /// Drops subschemas whose text repeats an earlier one (Confluent collapses them in a set).
    fn distinct(&self, doc: usize, ids: &[NodeId]) -> Vec<NodeId> {
        let d = self.docs[doc];
        let mut out: Vec<NodeId> = Vec::new();
        for &id in ids {
            let duplicate = out
                .iter()
                .any(|&e| e == id || matches!((d.source_text(e), d.source_text(id)), (Some(a), Some(b)) if a == b));
            if !duplicate {
                out.push(id);
            }
        }
        out
    }

    /// `CombinedSchemaDiff`: criteria, then a maximum matching of compatible subschema pairs.
    fn compare_combined(
        &mut self,
        out: &mut Diffs,
        o: N,
        u: N,
        (oc, osubs): (Criterion, &[NodeId]),
        (uc, usubs): (Criterion, &[NodeId]),
    ) {
        let criteria = if oc == uc {
            None
        } else if uc == Criterion::Any {
            Some(K::CombinedTypeExtended)
        } else if uc == Criterion::One {
            Some(if osubs.len() == 1 { K::CombinedTypeExtended } else { K::CombinedTypeChanged })
        } else if osubs.len() == 1 && usubs.len() == 1 {
            Some(K::CombinedTypeExtended)
        } else {
            Some(K::CombinedTypeChanged)
        };
        if let Some(kind) = criteria {
            out.push(here(kind));
            if kind == K::CombinedTypeChanged {
                return;
            }
        }
        let os = self.distinct(o.doc, osubs);
        let us = self.distinct(u.doc, usubs);
        if os.len() < us.len() {
            let all = uc == Criterion::All;
            out.push(here(if all { K::ProductTypeExtended } else { K::SumTypeExtended }));
        } else if os.len() > us.len() {
            let all = uc == Criterion::All;
            out.push(here(if all { K::ProductTypeNarrowed } else { K::SumTypeNarrowed }));
        }

        let mut adjacency: Vec<Vec<usize>> = vec![Vec::new(); os.len()];
        let mut edge_diffs: HashMap<(usize, usize), Changes> = HashMap::new();
        for (i, &a) in os.iter().enumerate() {
            let segment = format!("{}/{}", oc.keyword(), i);
            for (j, &b) in us.iter().enumerate() {
                let d = self.compare(o.with(a), u.with(b));
                if compatible(&d) {
                    adjacency[i].push(j);
                    edge_diffs.insert((i, j), d.under(&[&segment]));
                }
            }
        }
        let matching = max_matching(os.len(), us.len(), &adjacency);
        let mut matched = 0;
        for (i, j) in matching.iter().enumerate() {
            if let Some(j) = j {
                matched += 1;
                out.push(edge_diffs.remove(&(i, *j)).unwrap_or_default());
            }
        }
        if matched < os.len().min(us.len()) {
            // No matching covers the smaller side: some subschema has no compatible partner.
            out.push(here(K::CombinedTypeSubschemasChanged));
        }
    }

    fn is_empty_schema(&self, n: N) -> bool {
        self.kind(n).is_empty_schema()
    }

    fn is_false(&self, n: N) -> bool {
        matches!(self.kind(n), Kind::False)
    }

    /// An `unevaluated*` schema that still constrains (neither `false` nor empty/`true`).
    fn constraining(&self, n: N) -> bool {
        !self.is_false(n) && !self.is_empty_schema(n)
    }

    fn object_is_open(&self, n: N, s: &ObjectSchema) -> bool {
        s.permits_additional
            && s.additional.is_none()
            && s.pattern_properties.is_empty()
            && s.unevaluated.is_none_or(|x| self.is_empty_schema(n.with(x)))
    }

    /// The schema a partially open object model gives to an undeclared property `name`.
    fn object_partial(&self, n: N, s: &ObjectSchema, name: &str) -> Option<N> {
        if let Some((_, id)) = s.pattern_properties.iter().find(|(p, _)| pattern_finds(p, name)) {
            return Some(n.with(*id));
        }
        self.rest_partial(n, s.permits_additional, s.additional, s.unevaluated)
    }

    fn array_is_open(&self, n: N, s: &ArraySchema) -> bool {
        s.permits_additional && s.additional.is_none() && s.unevaluated.is_none_or(|x| self.is_empty_schema(n.with(x)))
    }

    /// The schema a partially open array model gives to items past its tuple.
    fn array_partial(&self, n: N, s: &ArraySchema) -> Option<N> {
        self.rest_partial(n, s.permits_additional, s.additional, s.unevaluated)
    }

    /// The schema what lies beyond the listed members gets: the `additional…` schema, else a
    /// constraining `unevaluated…` one where more is permitted.
    fn rest_partial(&self, n: N, permits: bool, additional: Option<NodeId>, unevaluated: Option<NodeId>) -> Option<N> {
        if let Some(a) = additional {
            return Some(n.with(a));
        }
        unevaluated.map(|x| n.with(x)).filter(|x| permits && self.constraining(*x))
    }

    /// `ObjectSchemaDiff`.
    fn compare_object(&mut self, out: &mut Diffs, o: N, u: N, os: &ObjectSchema, us: &ObjectSchema) {
        let has_default = |this: &Self, n: N| this.node(n).default.is_some();

        // required
        for name in java_order::map_order(os.properties.iter().map(|(k, _)| k.as_str())) {
            let Some(up) = us.property(&name) else {
                continue;
            };
            let was = os.required.contains(&name);
            let is = us.required.contains(&name);
            if was && !is {
                out.push(at(K::RequiredAttributeRemoved, &["required", &name]));
            } else if !was && is {
                let kind = if has_default(self, u.with(up)) {
                    K::RequiredAttributeWithDefaultAdded
                } else {
                    K::RequiredAttributeAdded
                };
                out.push(at(kind, &["required", &name]));
            }
        }

        // properties
        let names = java_order::union_order(
            os.properties.iter().map(|(k, _)| k.as_str()),
            us.properties.iter().map(|(k, _)| k.as_str()),
        );
        for name in names {
            let path = ["properties", name.as_str()];
            match (os.property(&name).map(|x| o.with(x)), us.property(&name).map(|x| u.with(x))) {
                (Some(op), None) => {
                    // Only the update's content model matters when a property disappears.
                    let (open, partial) = (self.object_is_open(u, us), self.object_partial(u, us, &name));
                    self.member_removed(out, &path, op, open, partial, &PROPERTY);
                }
                (None, Some(up)) => {
                    // Only the original's content model matters when a property appears.
                    let required = us.required.contains(&name);
                    if self.object_is_open(o, os) {
                        let kind = if self.is_empty_schema(up) {
                            K::PropertyWithEmptySchemaAddedToOpenContentModel
                        } else if required && has_default(self, up) {
                            K::RequiredPropertyWithDefaultAddedToOpenContentModel
                        } else if required {
                            K::RequiredPropertyAddedToOpenContentModel
                        } else {
                            K::OptionalPropertyAddedToOpenContentModel
                        };
                        out.push(at(kind, &path));
                    } else {
                        if let Some(partial) = self.object_partial(o, os, &name) {
                            self.covered(out, &path, partial, up, PROPERTY.added_covered);
                        }
                        let kind = if required && has_default(self, up) {
                            K::RequiredPropertyWithDefaultAddedToUnopenContentModel
                        } else if required {
                            K::RequiredPropertyAddedToUnopenContentModel
                        } else {
                            K::OptionalPropertyAddedToUnopenContentModel
                        };
                        out.push(at(kind, &path));
                    }
                }
                (Some(op), Some(up)) => {
                    let d = self.compare(op, up);
                    extend_at(out, &path, d);
                }
                (None, None) => {}
            }
        }

        // dependencies (draft-07 `dependencies`, 2020-12 `dependentRequired`/`dependentSchemas`)
        fn deps<'s>(s: &'s ObjectSchema, name: &str) -> Option<&'s Vec<String>> {
            s.property_dependencies.iter().find(|(k, _)| k == name).map(|(_, v)| v)
        }
        let names = java_order::union_order(
            os.property_dependencies.iter().map(|(k, _)| k.as_str()),
            us.property_dependencies.iter().map(|(k, _)| k.as_str()),
        );
        for name in names {
            let path = ["dependencies", name.as_str()];
            let kind = match (deps(os, &name), deps(us, &name)) {
                (_, None) => K::DependencyArrayRemoved,
                (None, Some(_)) => K::DependencyArrayAdded,
                (Some(a), Some(b)) => {
                    let a: HashSet<&String> = a.iter().collect();
                    let b: HashSet<&String> = b.iter().collect();
                    if a == b {
                        continue;
                    } else if b.is_superset(&a) {
                        K::DependencyArrayExtended
                    } else if a.is_superset(&b) {
                        K::DependencyArrayNarrowed
                    } else {
                        K::DependencyArrayChanged
                    }
                }
            };
            out.push(at(kind, &path));
        }
        let dep_schema =
            |s: &ObjectSchema, name: &str| s.schema_dependencies.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let names = java_order::union_order(
            os.schema_dependencies.iter().map(|(k, _)| k.as_str()),
            us.schema_dependencies.iter().map(|(k, _)| k.as_str()),
        );
        for name in names {
            let path = ["dependencies", name.as_str()];
            match (dep_schema(os, &name), dep_schema(us, &name)) {
                (_, None) => out.push(at(K::DependencySchemaRemoved, &path)),
                (None, Some(_)) => out.push(at(K::DependencySchemaAdded, &path)),
                (Some(a), Some(b)) => {
                    let d = self.compare(o.with(a), u.with(b));
                    extend_at(out, &path, d);
                }
            }
        }

        let side = |n: N, s: &ObjectSchema| {
            (s.permits_additional, s.additional.map(|x| n.with(x)), s.unevaluated.map(|x| n.with(x)))
        };
        self.compare_rest(out, side(o, os), side(u, us), &PROPERTIES_REST);

        compare_limit(
            out,
            "maxProperties",
            os.max_properties,
            us.max_properties,
            [K::MaxPropertiesAdded, K::MaxPropertiesRemoved, K::MaxPropertiesIncreased, K::MaxPropertiesDecreased],
        );
        compare_limit(
            out,
            "minProperties",
            os.min_properties,
            us.min_properties,
            [K::MinPropertiesAdded, K::MinPropertiesRemoved, K::MinPropertiesIncreased, K::MinPropertiesDecreased],
        );
    }

    /// A member (property or tuple item) only the original has; the update's content model
    /// decides: open, partially open (`partial`: the schema that now covers the member's
    /// place), or closed.
    fn member_removed(
        &mut self,
        out: &mut Diffs,
        path: &[&str],
        member: N,
        open: bool,
        partial: Option<N>,
        k: &Member,
    ) {
        if open {
            out.push(at(k.removed_from_open, path));
        } else if let Some(partial) = partial {
            self.covered(out, path, member, partial, k.removed_covered);
        } else if self.is_false(member) {
            out.push(at(k.false_removed_from_closed, path));
        } else {
            out.push(at(k.removed_from_closed, path));
        }
    }

    /// Compares `original` with `update` at `path`, then says whether the one covers the other:
    /// `[covered, not covered]`.
    fn covered(&mut self, out: &mut Diffs, path: &[&str], original: N, update: N, [yes, no]: [K; 2]) {
        let d = self.compare(original, update);
        let covered = compatible(&d);
        extend_at(out, path, d);
        out.push(at(if covered { yes } else { no }, path));
    }

    /// What lies beyond the listed members (`additional…`, then `unevaluated…`), each side as
    /// (permits more, the additional schema, the unevaluated schema).
    fn compare_rest(
        &mut self,
        out: &mut Diffs,
        (o_permits, o_additional, o_unevaluated): (bool, Option<N>, Option<N>),
        (u_permits, u_additional, u_unevaluated): (bool, Option<N>, Option<N>),
        rest: &Rest,
    ) {
        self.compare_additional(
            out,
            rest.additional.0,
            (o_permits, o_additional),
            (u_permits, u_additional),
            rest.additional.1,
        );
        self.compare_unevaluated(out, rest.unevaluated.0, o_unevaluated, u_unevaluated, rest.unevaluated.1);
    }

    /// `additionalProperties`/`additionalItems`, each side as (permits more, its schema):
    /// `[added, removed, extended, narrowed]`.
    fn compare_additional(
        &mut self,
        out: &mut Diffs,
        keyword: &str,
        (o_permits, o_schema): (bool, Option<N>),
        (u_permits, u_schema): (bool, Option<N>),
        [added, removed, extended, narrowed]: [K; 4],
    ) {
        let path = [keyword];
        if o_permits != u_permits {
            out.push(at(if u_permits { added } else { removed }, &path));
        } else if o_schema.is_none() && u_schema.is_some() {
            out.push(at(narrowed, &path));
        } else if o_schema.is_some() && u_schema.is_none() {
            out.push(at(extended, &path));
        } else {
            let d = self.compare_opt(o_schema, u_schema);
            extend_at(out, &path, d);
        }
    }

    /// `unevaluatedItems`/`unevaluatedProperties`: `[added, removed, extended, narrowed]`.
    fn compare_unevaluated(
        &mut self,
        out: &mut Diffs,
        keyword: &str,
        original: Option<N>,
        update: Option<N>,
        [added, removed, extended, narrowed]: [K; 4],
    ) {
        let kind = match (original, update) {
            (None, None) => return,
            (None, Some(u)) => {
                if self.is_false(u) {
                    removed
                } else {
                    narrowed
                }
            }
            (Some(o), None) => {
                if self.is_false(o) {
                    added
                } else {
                    extended
                }
            }
            (Some(o), Some(u)) => {
                if self.is_false(o) && !self.is_false(u) {
                    added
                } else if !self.is_false(o) && self.is_false(u) {
                    removed
                } else if self.is_empty_schema(o) && !self.is_empty_schema(u) {
                    narrowed
                } else if !self.is_empty_schema(o) && self.is_empty_schema(u) {
                    extended
                } else {
                    let d = self.compare(o, u);
                    extend_at(out, &[keyword], d);
                    return;
                }
            }
        };
        out.push(at(kind, &[keyword]));
    }

    /// `ArraySchemaDiff`.
    fn compare_array(&mut self, out: &mut Diffs, o: N, u: N, os: &ArraySchema, us: &ArraySchema) {
        // items as a single schema
        let d = self.compare_opt(os.all_items.map(|x| o.with(x)), us.all_items.map(|x| u.with(x)));
        extend_at(out, &["items"], d);

        // tuple items
        let common = os.item_schemas.len().min(us.item_schemas.len());
        for i in 0..common {
            let d = self.compare(o.with(os.item_schemas[i]), u.with(us.item_schemas[i]));
            extend_at(out, &[&format!("items/{i}")], d);
        }
        for (i, &item) in os.item_schemas.iter().enumerate().skip(common) {
            let segment = format!("items/{i}");
            let (open, partial) = (self.array_is_open(u, us), self.array_partial(u, us));
            self.member_removed(out, &[segment.as_str()], o.with(item), open, partial, &ITEM);
        }
        for (i, &item) in us.item_schemas.iter().enumerate().skip(common) {
            let segment = format!("items/{i}");
            let path = [segment.as_str()];
            let update_item = u.with(item);
            if self.array_is_open(o, os) {
                out.push(at(
                    if self.is_empty_schema(update_item) {
                        K::ItemWithEmptySchemaAddedToOpenContentModel
                    } else {
                        K::ItemAddedToOpenContentModel
                    },
                    &path,
                ));
            } else if let Some(partial) = self.array_partial(o, os) {
                self.covered(out, &path, partial, update_item, ITEM.added_covered);
            } else {
                out.push(at(K::ItemAddedToClosedContentModel, &path));
            }
        }

        let side = |n: N, s: &ArraySchema| {
            (s.permits_additional, s.additional.map(|x| n.with(x)), s.unevaluated.map(|x| n.with(x)))
        };
        self.compare_rest(out, side(o, os), side(u, us), &ITEMS_REST);

        compare_limit(
            out,
            "maxItems",
            os.max_items,
            us.max_items,
            [K::MaxItemsAdded, K::MaxItemsRemoved, K::MaxItemsIncreased, K::MaxItemsDecreased],
        );
        compare_limit(
            out,
            "minItems",
            os.min_items,
            us.min_items,
            [K::MinItemsAdded, K::MinItemsRemoved, K::MinItemsIncreased, K::MinItemsDecreased],
        );
        if os.unique_items != us.unique_items {
            let kind = if os.unique_items { K::UniqueItemsRemoved } else { K::UniqueItemsAdded };
            out.push(at(kind, &["uniqueItems"]));
        }
        compare_limit(
            out,
            "maxContains",
            os.max_contains,
            us.max_contains,
            [K::MaxContainsAdded, K::MaxContainsRemoved, K::MaxContainsIncreased, K::MaxContainsDecreased],
        );
        compare_limit(
            out,
            "minContains",
            os.min_contains,
            us.min_contains,
            [K::MinContainsAdded, K::MinContainsRemoved, K::MinContainsIncreased, K::MinContainsDecreased],
        );
    }
}

/// The change kinds of a member (property or tuple item) that only one side has.
struct Member {
    removed_from_open: K,
    /// `[covered, not covered]` by the update's partially open content model.
    removed_covered: [K; 2],
    false_removed_from_closed: K,
    removed_from_closed: K,
    /// `[covered, not covered]` by the original's partially open content model.
    added_covered: [K; 2],
}

/// The keywords and change kinds of what lies beyond the listed members:
/// `[added, removed, extended, narrowed]` for each.
struct Rest {
    additional: (&'static str, [K; 4]),
    unevaluated: (&'static str, [K; 4]),
}

const PROPERTIES_REST: Rest = Rest {
    additional: (
        "additionalProperties",
        [
            K::AdditionalPropertiesAdded,
            K::AdditionalPropertiesRemoved,
            K::AdditionalPropertiesExtended,
            K::AdditionalPropertiesNarrowed,
        ],
    ),
    unevaluated: (
        "unevaluatedProperties",
        [
            K::UnevaluatedPropertiesAdded,
            K::UnevaluatedPropertiesRemoved,
            K::UnevaluatedPropertiesExtended,
            K::UnevaluatedPropertiesNarrowed,
        ],
    ),
};

const ITEMS_REST: Rest = Rest {
    additional: (
        "additionalItems",
        [K::AdditionalItemsAdded, K::AdditionalItemsRemoved, K::AdditionalItemsExtended, K::AdditionalItemsNarrowed],
    ),
    unevaluated: (
        "unevaluatedItems",
        [
            K::UnevaluatedItemsAdded,
            K::UnevaluatedItemsRemoved,
            K::UnevaluatedItemsExtended,
            K::UnevaluatedItemsNarrowed,
        ],
    ),
};

const PROPERTY: Member = Member {
    removed_from_open: K::PropertyRemovedFromOpenContentModel,
    removed_covered: [
        K::PropertyRemovedIsCoveredByPartiallyOpenContentModel,
        K::PropertyRemovedNotCoveredByPartiallyOpenContentModel,
    ],
    false_removed_from_closed: K::PropertyWithFalseRemovedFromClosedContentModel,
    removed_from_closed: K::PropertyRemovedFromClosedContentModel,
    added_covered: [
        K::PropertyAddedIsCoveredByPartiallyOpenContentModel,
        K::PropertyAddedNotCoveredByPartiallyOpenContentModel,
    ],
};

const ITEM: Member = Member {
    removed_from_open: K::ItemRemovedFromOpenContentModel,
    removed_covered: [
        K::ItemRemovedIsCoveredByPartiallyOpenContentModel,
        K::ItemRemovedNotCoveredByPartiallyOpenContentModel,
    ],
    false_removed_from_closed: K::ItemWithFalseRemovedFromClosedContentModel,
    removed_from_closed: K::ItemRemovedFromClosedContentModel,
    added_covered: [
        K::ItemAddedIsCoveredByPartiallyOpenContentModel,
        K::ItemAddedNotCoveredByPartiallyOpenContentModel,
    ],
};

/// `StringSchemaDiff`.
fn compare_string(out: &mut Diffs, o: &StringSchema, u: &StringSchema) {
    compare_limit(
        out,
        "maxLength",
        o.max_length,
        u.max_length,
        [K::MaxLengthAdded, K::MaxLengthRemoved, K::MaxLengthIncreased, K::MaxLengthDecreased],
    );
    compare_limit(
        out,
        "minLength",
        o.min_length,
        u.min_length,
        [K::MinLengthAdded, K::MinLengthRemoved, K::MinLengthIncreased, K::MinLengthDecreased],
    );
    let kind = match (&o.pattern, &u.pattern) {
        (None, Some(_)) => K::PatternAdded,
        (Some(_), None) => K::PatternRemoved,
        (Some(a), Some(b)) if a != b => K::PatternChanged,
        _ => return,
    };
    out.push(at(kind, &["pattern"]));
}

/// `NumberSchemaDiff`.
fn compare_number(out: &mut Diffs, o: &NumberSchema, u: &NumberSchema) {
    compare_limit(
        out,
        "maximum",
        o.maximum,
        u.maximum,
        [K::MaximumAdded, K::MaximumRemoved, K::MaximumIncreased, K::MaximumDecreased],
    );
    compare_limit(
        out,
        "minimum",
        o.minimum,
        u.minimum,
        [K::MinimumAdded, K::MinimumRemoved, K::MinimumIncreased, K::MinimumDecreased],
    );
    compare_limit(
        out,
        "exclusiveMaximum",
        o.exclusive_maximum,
        u.exclusive_maximum,
        [
            K::ExclusiveMaximumAdded,
            K::ExclusiveMaximumRemoved,
            K::ExclusiveMaximumIncreased,
            K::ExclusiveMaximumDecreased,
        ],
    );
    compare_limit(
        out,
        "exclusiveMinimum",
        o.exclusive_minimum,
        u.exclusive_minimum,
        [
            K::ExclusiveMinimumAdded,
            K::ExclusiveMinimumRemoved,
            K::ExclusiveMinimumIncreased,
            K::ExclusiveMinimumDecreased,
        ],
    );
    let multiple = match (o.multiple_of, u.multiple_of) {
        (None, Some(_)) => Some(K::MultipleOfAdded),
        (Some(_), None) => Some(K::MultipleOfRemoved),
        (Some(a), Some(b)) if a != b => Some(if is_multiple(b, a) {
            K::MultipleOfExpanded
        } else if is_multiple(a, b) {
            K::MultipleOfReduced
        } else {
            K::MultipleOfChanged
        }),
        _ => None,
    };
    if let Some(kind) = multiple {
        out.push(at(kind, &["multipleOf"]));
    }
    if o.requires_integer != u.requires_integer {
        out.push(here(if o.requires_integer { K::TypeExtended } else { K::TypeNarrowed }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_finds_augmenting_paths() {
        // 0 -> {0, 1}, 1 -> {0}: greedy would give 0->0 and leave 1 unmatched.
        let m = max_matching(2, 2, &[vec![0, 1], vec![0]]);
        assert_eq!(m, vec![Some(1), Some(0)]);
        let m = max_matching(2, 1, &[vec![0], vec![0]]);
        assert_eq!(m.iter().flatten().count(), 1);
    }

    #[test]
    fn multiples() {
        assert!(is_multiple(10.0, 2.0));
        assert!(!is_multiple(11.0, 10.0));
        assert!(is_multiple(1.5, 0.5));
    }
}

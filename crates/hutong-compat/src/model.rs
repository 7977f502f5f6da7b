//! Loads JSON Schema documents into the schema model Confluent's checker compares.
//!
//! Confluent diffs the object model of the everit-json-schema library, not raw JSON: a schema
//! object becomes one typed schema (string, number, object, array, enum, const, combined, not,
//! reference, ...) or, when several kinds of keywords appear side by side, a synthetic `allOf` of
//! them. 2019-09/2020-12 schemas are parsed by json-sKema and translated into the same model. This
//! module reproduces that shape so the diff rules can be applied as Confluent applies them.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::java_order;

/// Index of a node in a [`Doc`].
pub(crate) type NodeId = usize;

/// The sentinel node every document has at index 0: an empty schema.
pub(crate) const EMPTY: NodeId = 0;

/// Which draft's keywords a document uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Draft4,
    Draft6,
    Draft7,
    /// 2019-09 and 2020-12 (json-sKema path in Confluent).
    Modern,
}

impl Dialect {
    fn of(root: &Value) -> Dialect {
        match root.get("$schema").and_then(Value::as_str) {
            Some(s) if s.contains("2020-12") || s.contains("2019-09") => Dialect::Modern,
            Some(s) if s.contains("draft-04") => Dialect::Draft4,
            Some(s) if s.contains("draft-06") => Dialect::Draft6,
            _ => Dialect::Draft7,
        }
    }
}

/// `allOf`, `anyOf` or `oneOf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Criterion {
    All,
    Any,
    One,
}

impl Criterion {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            Criterion::All => "allOf",
            Criterion::Any => "anyOf",
            Criterion::One => "oneOf",
        }
    }

    fn from_keyword(k: &str) -> Option<Criterion> {
        match k {
            "allOf" => Some(Criterion::All),
            "anyOf" => Some(Criterion::Any),
            "oneOf" => Some(Criterion::One),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct StringSchema {
    pub min_length: Option<f64>,
    pub max_length: Option<f64>,
    pub pattern: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NumberSchema {
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: Option<f64>,
    pub exclusive_maximum: Option<f64>,
    pub multiple_of: Option<f64>,
    pub requires_integer: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ObjectSchema {
    pub properties: Vec<(String, NodeId)>,
    pub required: Vec<String>,
    pub min_properties: Option<f64>,
    pub max_properties: Option<f64>,
    pub permits_additional: bool,
    pub additional: Option<NodeId>,
    pub pattern_properties: Vec<(String, NodeId)>,
    pub property_dependencies: Vec<(String, Vec<String>)>,
    pub schema_dependencies: Vec<(String, NodeId)>,
    pub unevaluated: Option<NodeId>,
}

impl Default for ObjectSchema {
    fn default() -> Self {
        ObjectSchema {
            properties: Vec::new(),
            required: Vec::new(),
            min_properties: None,
            max_properties: None,
            permits_additional: true,
            additional: None,
            pattern_properties: Vec::new(),
            property_dependencies: Vec::new(),
            schema_dependencies: Vec::new(),
            unevaluated: None,
        }
    }
}

impl ObjectSchema {
    pub(crate) fn property(&self, name: &str) -> Option<NodeId> {
        self.properties.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ArraySchema {
    /// `items` as a single schema (everit's "all item schema").
    pub all_items: Option<NodeId>,
    /// Tuple items (`items: [...]` in draft-07, `prefixItems` in 2020-12).
    pub item_schemas: Vec<NodeId>,
    pub permits_additional: bool,
    /// `additionalItems` schema (draft-07) or `items` after `prefixItems` (2020-12).
    pub additional: Option<NodeId>,
    pub min_items: Option<f64>,
    pub max_items: Option<f64>,
    pub unique_items: bool,
    pub unevaluated: Option<NodeId>,
    pub min_contains: Option<f64>,
    pub max_contains: Option<f64>,
}

impl Default for ArraySchema {
    fn default() -> Self {
        ArraySchema {
            all_items: None,
            item_schemas: Vec::new(),
            permits_additional: true,
            additional: None,
            min_items: None,
            max_items: None,
            unique_items: false,
            unevaluated: None,
            min_contains: None,
            max_contains: None,
        }
    }
}

/// The class of a schema node, mirroring everit's schema classes.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// `{}` or a schema with no recognised keywords.
    Empty,
    /// The boolean schema `true` (an empty schema for the diff rules).
    True,
    /// The boolean schema `false`.
    False,
    Null,
    Boolean,
    String(StringSchema),
    Number(NumberSchema),
    Object(Box<ObjectSchema>),
    Array(Box<ArraySchema>),
    Enum(Vec<Value>),
    Const(Value),
    Combined(Criterion, Vec<NodeId>),
    Not(NodeId),
    /// A resolved `$ref`.
    Ref(NodeId),
    /// `if`/`then`/`else`; Confluent compares only its annotations.
    Conditional,
    /// A `$ref` this crate cannot resolve (remote, or a missing target).
    Unresolved(String),
}

impl Kind {
    /// An identifier of the everit class; combined schemas of any criterion share one.
    pub(crate) fn class(&self) -> u8 {
        match self {
            Kind::Empty => 0,
            Kind::True => 1,
            Kind::False => 2,
            Kind::Null => 3,
            Kind::Boolean => 4,
            Kind::String(_) => 5,
            Kind::Number(_) => 6,
            Kind::Object(_) => 7,
            Kind::Array(_) => 8,
            Kind::Enum(_) => 9,
            Kind::Const(_) => 10,
            Kind::Combined(..) => 11,
            Kind::Not(_) => 12,
            Kind::Ref(_) => 13,
            Kind::Conditional => 14,
            Kind::Unresolved(_) => 15,
        }
    }

    /// everit's `instanceof EmptySchema` (true for `TrueSchema` as well).
    pub(crate) fn is_empty_schema(&self) -> bool {
        matches!(self, Kind::Empty | Kind::True)
    }
}

/// One schema in the model, with the annotations Confluent compares.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub default: Option<Value>,
    pub connect_type: Option<String>,
    /// JSON pointer of the schema text this node was loaded from; `None` for synthetic parts.
    pub source: Option<String>,
}

impl Node {
    fn new(kind: Kind) -> Node {
        Node { kind, id: None, title: None, description: None, default: None, connect_type: None, source: None }
    }
}

/// A loaded schema document.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub nodes: Vec<Node>,
    pub root: NodeId,
    text: Value,
}

impl Doc {
    /// Loads `schema` (any JSON value; non-schemas load as the empty schema).
    pub(crate) fn load(schema: &Value) -> Doc {
        let mut loader = Loader {
            text: schema,
            dialect: Dialect::of(schema),
            nodes: vec![Node::new(Kind::Empty)],
            refs: HashMap::new(),
            pending: Vec::new(),
            ids: Vec::new(),
            anchors: Vec::new(),
        };
        loader.index_ids(schema, String::new());
        let root = loader.load(schema, String::new());
        while let Some((slot, pointer)) = loader.pending.pop() {
            let target = value_at(schema, &pointer).expect("checked when the reference was met");
            let node = loader.build(target, pointer);
            loader.nodes[slot] = node;
        }
        Doc { nodes: loader.nodes, root, text: schema.clone() }
    }

    /// The schema text a node was loaded from, if it was loaded from text.
    pub(crate) fn source_text(&self, node: NodeId) -> Option<&Value> {
        self.nodes[node].source.as_deref().and_then(|p| value_at(&self.text, p))
    }
}

const NUMBER_KEYWORDS: &[&str] = &["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"];
const DRAFT_STRING_KEYWORDS: &[&str] = &["minLength", "maxLength", "pattern", "format"];
const MODERN_STRING_KEYWORDS: &[&str] = &["minLength", "maxLength", "pattern"];
const DRAFT_ARRAY_KEYWORDS: &[&str] = &["items", "additionalItems", "minItems", "maxItems", "uniqueItems", "contains"];
const MODERN_ARRAY_KEYWORDS: &[&str] =
    &["prefixItems", "items", "minItems", "maxItems", "uniqueItems", "contains", "unevaluatedItems"];
const DRAFT_OBJECT_KEYWORDS: &[&str] = &[
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "dependencies",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
];
const MODERN_OBJECT_KEYWORDS: &[&str] = &[
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
];

/// Keywords whose values are data, not schemas (skipped when indexing `$id`s).
const DATA_KEYWORDS: &[&str] = &["enum", "const", "default", "examples", "required"];

struct Loader<'a> {
    text: &'a Value,
    dialect: Dialect,
    nodes: Vec<Node>,
    /// JSON pointer of a `$ref` target -> its node, so recursive references terminate.
    refs: HashMap<String, NodeId>,
    /// Reserved `$ref` target nodes still to be built, with their pointers.
    pending: Vec<(NodeId, String)>,
    /// `$id` values and the pointers of the schemas declaring them.
    ids: Vec<(String, String)>,
    /// Plain-name anchors (`$anchor`, or `$id: "#name"`) and their pointers.
    anchors: Vec<(String, String)>,
}

fn escape_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn child(ptr: &str, segment: &str) -> String {
    format!("{ptr}/{}", escape_segment(segment))
}

/// Resolves a JSON pointer (`""` or `"/a/b"`) within `root`.
pub(crate) fn value_at<'v>(root: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(root);
    }
    let mut cur = root;
    for raw in pointer.strip_prefix('/')?.split('/') {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        cur = match cur {
            Value::Object(m) => m.get(&seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

fn number(o: &Map<String, Value>, key: &str) -> Option<f64> {
    o.get(key).and_then(Value::as_f64)
}

impl<'a> Loader<'a> {
    fn modern(&self) -> bool {
        self.dialect == Dialect::Modern
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Loads the schema `value` found at JSON pointer `ptr` and returns its node.
    fn load(&mut self, value: &Value, ptr: String) -> NodeId {
        let node = self.build(value, ptr);
        self.push(node)
    }

    fn build(&mut self, value: &Value, ptr: String) -> Node {
        let mut node = match value {
            Value::Bool(true) => Node::new(Kind::True),
            Value::Bool(false) => Node::new(Kind::False),
            Value::Object(o) => return self.build_object(o, ptr),
            _ => Node::new(Kind::Empty),
        };
        node.source = Some(ptr);
        node
    }

    fn build_object(&mut self, o: &Map<String, Value>, ptr: String) -> Node {
        let modern = self.modern();
        let mut parts: Vec<Kind> = Vec::new();
        let reference = o.get("$ref").and_then(Value::as_str);
        if let Some(r) = reference {
            parts.push(self.reference(r));
        }
        // everit ignores the siblings of `$ref`; 2019-09+ applies them next to the reference.
        if reference.is_none() || modern {
            if let Some(Value::Array(values)) = o.get("enum") {
                parts.push(Kind::Enum(values.clone()));
            }
            for keyword in java_order::map_order(["allOf", "anyOf", "oneOf"]) {
                if let Some(Value::Array(subs)) = o.get(&keyword) {
                    let base = child(&ptr, &keyword);
                    let ids = subs.iter().enumerate().map(|(i, s)| self.load(s, format!("{base}/{i}"))).collect();
                    let criterion = Criterion::from_keyword(&keyword).expect("combinator");
                    parts.push(Kind::Combined(criterion, ids));
                }
            }
            if let Some(not) = o.get("not") {
                let id = self.load(not, child(&ptr, "not"));
                parts.push(Kind::Not(id));
            }
            if self.dialect != Dialect::Draft4
                && let Some(c) = o.get("const")
            {
                parts.push(Kind::Const(c.clone()));
            }
            let mut consumed: HashSet<&'static str> = HashSet::new();
            match o.get("type") {
                Some(Value::String(t)) => {
                    if let Some(kind) = self.typed(t, o, &ptr, &mut consumed) {
                        parts.push(kind);
                    }
                }
                Some(Value::Array(types)) => {
                    let mut ids = Vec::new();
                    for t in types.iter().filter_map(Value::as_str) {
                        if let Some(kind) = self.typed(t, o, &ptr, &mut consumed) {
                            ids.push(self.push(Node::new(kind)));
                        }
                    }
                    parts.push(Kind::Combined(Criterion::Any, ids));
                }
                _ => {}
            }
            self.sniff(o, &ptr, &mut consumed, &mut parts);
        }

        let mut node = match parts.len() {
            0 => Node::new(Kind::Empty),
            1 => Node::new(parts.pop().expect("one part")),
            _ => {
                let ids = parts.into_iter().map(|k| self.push(Node::new(k))).collect();
                Node::new(Kind::Combined(Criterion::All, ids))
            }
        };
        let id_keyword = match self.dialect {
            Dialect::Draft4 => Some("id"),
            Dialect::Draft6 | Dialect::Draft7 => Some("$id"),
            // Confluent's 2020-12 translation does not carry `$id` into the compared model.
            Dialect::Modern => None,
        };
        node.id = id_keyword.and_then(|k| o.get(k)).and_then(Value::as_str).map(str::to_owned);
        node.title = o.get("title").and_then(Value::as_str).map(str::to_owned);
        node.description = o.get("description").and_then(Value::as_str).map(str::to_owned);
        node.default = o.get("default").cloned();
        node.connect_type = o.get("connect.type").and_then(Value::as_str).map(str::to_owned);
        node.source = Some(ptr);
        node
    }

    /// The schema for an explicit `type`, taking that type's keywords from the same object.
    fn typed(
        &mut self,
        t: &str,
        o: &Map<String, Value>,
        ptr: &str,
        consumed: &mut HashSet<&'static str>,
    ) -> Option<Kind> {
        Some(match t {
            "string" => {
                consumed.extend(self.string_keywords());
                Kind::String(self.string_schema(o))
            }
            "integer" | "number" => {
                consumed.extend(NUMBER_KEYWORDS);
                let mut n = self.number_schema(o);
                n.requires_integer = t == "integer";
                Kind::Number(n)
            }
            "boolean" => Kind::Boolean,
            "null" => Kind::Null,
            "array" => {
                consumed.extend(self.array_keywords());
                Kind::Array(Box::new(self.array_schema(o, ptr)))
            }
            "object" => {
                consumed.extend(self.object_keywords());
                Kind::Object(Box::new(self.object_schema(o, ptr)))
            }
            _ => return None,
        })
    }

    fn string_keywords(&self) -> &'static [&'static str] {
        if self.modern() { MODERN_STRING_KEYWORDS } else { DRAFT_STRING_KEYWORDS }
    }

    fn array_keywords(&self) -> &'static [&'static str] {
        if self.modern() { MODERN_ARRAY_KEYWORDS } else { DRAFT_ARRAY_KEYWORDS }
    }

    fn object_keywords(&self) -> &'static [&'static str] {
        if self.modern() { MODERN_OBJECT_KEYWORDS } else { DRAFT_OBJECT_KEYWORDS }
    }

    /// Whether `keyword` is present, not yet consumed, and (2020-12) yields a subschema at all.
    fn present(&self, o: &Map<String, Value>, keyword: &str, consumed: &HashSet<&str>) -> bool {
        if consumed.contains(keyword) {
            return false;
        }
        match o.get(keyword) {
            None => false,
            // json-sKema produces nothing for an empty `properties`/`patternProperties` map.
            Some(Value::Object(m))
                if self.modern() && m.is_empty() && (keyword == "properties" || keyword == "patternProperties") =>
            {
                false
            }
            Some(_) => true,
        }
    }

    /// everit's property sniffing: keywords of a type without an explicit `type` for it.
    fn sniff(
        &mut self,
        o: &Map<String, Value>,
        ptr: &str,
        consumed: &mut HashSet<&'static str>,
        parts: &mut Vec<Kind>,
    ) {
        let any = |this: &Self, kws: &[&str], consumed: &HashSet<&'static str>| {
            kws.iter().any(|k| this.present(o, k, consumed))
        };
        if any(self, self.array_keywords(), consumed) {
            consumed.extend(self.array_keywords());
            parts.push(Kind::Array(Box::new(self.array_schema(o, ptr))));
        }
        if any(self, self.object_keywords(), consumed) {
            consumed.extend(self.object_keywords());
            parts.push(Kind::Object(Box::new(self.object_schema(o, ptr))));
        }
        if any(self, NUMBER_KEYWORDS, consumed) {
            consumed.extend(NUMBER_KEYWORDS);
            parts.push(Kind::Number(self.number_schema(o)));
        }
        if any(self, self.string_keywords(), consumed) {
            consumed.extend(self.string_keywords());
            parts.push(Kind::String(self.string_schema(o)));
        }
        let conditional = match self.dialect {
            Dialect::Draft7 => ["if", "then", "else"].iter().any(|k| o.contains_key(*k)),
            Dialect::Modern => o.contains_key("if"),
            _ => false,
        };
        if conditional {
            parts.push(Kind::Conditional);
        }
    }

    fn string_schema(&self, o: &Map<String, Value>) -> StringSchema {
        StringSchema {
            min_length: number(o, "minLength"),
            max_length: number(o, "maxLength"),
            pattern: o.get("pattern").and_then(Value::as_str).map(str::to_owned),
        }
    }

    fn number_schema(&self, o: &Map<String, Value>) -> NumberSchema {
        // Draft-04's boolean `exclusiveMinimum`/`exclusiveMaximum` carry no limit of their own.
        NumberSchema {
            minimum: number(o, "minimum"),
            maximum: number(o, "maximum"),
            exclusive_minimum: number(o, "exclusiveMinimum"),
            exclusive_maximum: number(o, "exclusiveMaximum"),
            multiple_of: number(o, "multipleOf"),
            requires_integer: false,
        }
    }

    fn object_schema(&mut self, o: &Map<String, Value>, ptr: &str) -> ObjectSchema {
        let mut s = ObjectSchema::default();
        if let Some(Value::Object(props)) = o.get("properties") {
            let base = child(ptr, "properties");
            for (name, schema) in props {
                let id = self.load(schema, child(&base, name));
                s.properties.push((name.clone(), id));
            }
        }
        match o.get("additionalProperties") {
            Some(Value::Bool(b)) => s.permits_additional = *b,
            Some(v @ Value::Object(_)) => {
                s.additional = Some(self.load(v, child(ptr, "additionalProperties")));
            }
            _ => {}
        }
        if let Some(Value::Array(req)) = o.get("required") {
            s.required = req.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        }
        if let Some(Value::Object(pats)) = o.get("patternProperties") {
            let base = child(ptr, "patternProperties");
            for (pattern, schema) in pats {
                let id = self.load(schema, child(&base, pattern));
                s.pattern_properties.push((pattern.clone(), id));
            }
        }
        let (required_deps, schema_deps) = if self.modern() {
            (o.get("dependentRequired"), o.get("dependentSchemas"))
        } else {
            (o.get("dependencies"), o.get("dependencies"))
        };
        if let Some(Value::Object(deps)) = required_deps {
            for (name, dep) in deps {
                if let Value::Array(names) = dep {
                    let names = names.iter().filter_map(Value::as_str).map(str::to_owned).collect();
                    s.property_dependencies.push((name.clone(), names));
                }
            }
        }
        if let Some(Value::Object(deps)) = schema_deps {
            let keyword = if self.modern() { "dependentSchemas" } else { "dependencies" };
            let base = child(ptr, keyword);
            for (name, dep) in deps {
                if matches!(dep, Value::Object(_) | Value::Bool(_)) {
                    let id = self.load(dep, child(&base, name));
                    s.schema_dependencies.push((name.clone(), id));
                }
            }
        }
        s.min_properties = number(o, "minProperties");
        s.max_properties = number(o, "maxProperties");
        if self.modern()
            && let Some(v) = o.get("unevaluatedProperties")
        {
            s.unevaluated = Some(self.load(v, child(ptr, "unevaluatedProperties")));
        }
        s
    }

    fn array_schema(&mut self, o: &Map<String, Value>, ptr: &str) -> ArraySchema {
        let mut s = ArraySchema {
            min_items: number(o, "minItems"),
            max_items: number(o, "maxItems"),
            unique_items: o.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false),
            ..ArraySchema::default()
        };
        if self.modern() {
            if let Some(Value::Array(prefix)) = o.get("prefixItems") {
                let base = child(ptr, "prefixItems");
                for (i, item) in prefix.iter().enumerate() {
                    let id = self.load(item, format!("{base}/{i}"));
                    s.item_schemas.push(id);
                }
            }
            match o.get("items") {
                Some(Value::Bool(false)) => s.permits_additional = false,
                Some(Value::Bool(true)) | None => {}
                Some(v) => {
                    let id = self.load(v, child(ptr, "items"));
                    if s.item_schemas.is_empty() {
                        s.all_items = Some(id);
                    } else {
                        s.additional = Some(id);
                    }
                }
            }
            if let Some(v) = o.get("unevaluatedItems") {
                s.unevaluated = Some(self.load(v, child(ptr, "unevaluatedItems")));
            }
            if o.contains_key("contains") {
                // json-sKema defaults `minContains` to 1.
                s.min_contains = Some(number(o, "minContains").unwrap_or(1.0));
                s.max_contains = number(o, "maxContains");
            }
        } else {
            match o.get("additionalItems") {
                Some(Value::Bool(b)) => s.permits_additional = *b,
                Some(v @ Value::Object(_)) => {
                    s.additional = Some(self.load(v, child(ptr, "additionalItems")));
                }
                _ => {}
            }
            match o.get("items") {
                Some(Value::Array(items)) => {
                    let base = child(ptr, "items");
                    for (i, item) in items.iter().enumerate() {
                        let id = self.load(item, format!("{base}/{i}"));
                        s.item_schemas.push(id);
                    }
                }
                Some(v @ (Value::Object(_) | Value::Bool(_))) => {
                    s.all_items = Some(self.load(v, child(ptr, "items")));
                }
                _ => {}
            }
            s.min_contains = number(o, "minContains");
            s.max_contains = number(o, "maxContains");
        }
        s
    }

    /// Resolves `$ref` to a node, loading the target once per pointer (so cycles terminate).
    fn reference(&mut self, r: &str) -> Kind {
        let Some(pointer) = self.ref_pointer(r) else {
            return Kind::Unresolved(r.to_owned());
        };
        if let Some(&id) = self.refs.get(&pointer) {
            return Kind::Ref(id);
        }
        if value_at(self.text, &pointer).is_none() {
            return Kind::Unresolved(r.to_owned());
        }
        // Reserve the target's node now and build it later (see `Doc::load`): loading targets
        // eagerly would recurse once per reference in a chain of definitions.
        let slot = self.push(Node::new(Kind::Empty));
        self.refs.insert(pointer.clone(), slot);
        self.pending.push((slot, pointer));
        Kind::Ref(slot)
    }

    /// The JSON pointer (within this document) a reference points at, if it is local.
    fn ref_pointer(&self, r: &str) -> Option<String> {
        let (base, fragment) = match r.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (r, None),
        };
        let base_pointer = if base.is_empty() { String::new() } else { self.lookup_id(base)? };
        match fragment {
            None | Some("") => Some(base_pointer),
            Some(f) if f.starts_with('/') => Some(base_pointer + &percent_decode(f)),
            Some(anchor) => {
                let anchor = percent_decode(anchor);
                self.anchors.iter().find(|(a, p)| *a == anchor && p.starts_with(&base_pointer)).map(|(_, p)| p.clone())
            }
        }
    }

    /// Finds the schema declaring `$id` equal to `base` (or ending in `/base`).
    fn lookup_id(&self, base: &str) -> Option<String> {
        let trimmed = |s: &str| s.trim_end_matches('#').to_owned();
        let base = trimmed(base);
        self.ids
            .iter()
            .find(|(id, _)| trimmed(id) == base)
            .or_else(|| {
                self.ids.iter().find(|(id, _)| {
                    let id = trimmed(id);
                    id.ends_with(&format!("/{base}")) || base.ends_with(&format!("/{id}"))
                })
            })
            .map(|(_, p)| p.clone())
    }

    /// Records every `$id`/`id` and `$anchor` in the document with its JSON pointer.
    fn index_ids(&mut self, value: &Value, ptr: String) {
        match value {
            Value::Object(o) => {
                for key in ["$id", "id"] {
                    if let Some(Value::String(id)) = o.get(key) {
                        if let Some(anchor) = id.strip_prefix('#') {
                            self.anchors.push((anchor.to_owned(), ptr.clone()));
                        } else {
                            self.ids.push((id.clone(), ptr.clone()));
                        }
                    }
                }
                if let Some(Value::String(anchor)) = o.get("$anchor") {
                    self.anchors.push((anchor.clone(), ptr.clone()));
                }
                for (k, v) in o {
                    if !DATA_KEYWORDS.contains(&k.as_str()) {
                        self.index_ids(v, child(&ptr, k));
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.index_ids(v, format!("{ptr}/{i}"));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root_kind(v: Value) -> Kind {
        let doc = Doc::load(&v);
        doc.nodes[doc.root].kind.clone()
    }

    #[test]
    fn keyword_sniffing_builds_synthetic_all_of() {
        assert!(matches!(root_kind(json!({"type": "string", "maxLength": 3})), Kind::String(_)));
        let k = root_kind(json!({"type": "string", "enum": ["a"]}));
        assert!(matches!(k, Kind::Combined(Criterion::All, ref ids) if ids.len() == 2));
        assert!(matches!(root_kind(json!({"properties": {}})), Kind::Object(_)));
        let modern = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "properties": {}});
        assert!(matches!(root_kind(modern), Kind::Empty));
    }

    #[test]
    fn recursive_refs_terminate() {
        let doc = Doc::load(&json!({
            "$ref": "#/definitions/node",
            "definitions": {"node": {"properties": {"next": {"$ref": "#/definitions/node"}}}}
        }));
        let Kind::Ref(target) = doc.nodes[doc.root].kind else { panic!("ref") };
        let Kind::Object(o) = &doc.nodes[target].kind else { panic!("object") };
        let next = o.property("next").unwrap();
        assert!(matches!(doc.nodes[next].kind, Kind::Ref(t) if t == target));
    }

    #[test]
    fn pointers() {
        let v = json!({"a": {"b/c": [1, {"d~e": 2}]}});
        assert_eq!(value_at(&v, "/a/b~1c/1/d~0e"), Some(&json!(2)));
        assert_eq!(percent_decode("/definitions/a%20b"), "/definitions/a b");
    }
}

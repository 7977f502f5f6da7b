//! Persistent lists of changes.
//!
//! A comparison result is reused many times: memoised per schema pair, relocated under a
//! property or subschema path, offered as an edge of the subschema matching. Sharing results as
//! immutable trees makes each of those O(1); the flat list is built once, at the end.

use std::rc::Rc;

use crate::kinds::ChangeKind;

/// A change with its location, as Confluent writes it (`#/properties/a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diff {
    pub kind: ChangeKind,
    pub pointer: String,
}

#[derive(Debug)]
enum Tree {
    Leaf(ChangeKind, Vec<String>),
    Prefixed(Vec<String>, Rc<Node>),
    Concat(Vec<Rc<Node>>),
}

#[derive(Debug)]
struct Node {
    compatible: bool,
    tree: Tree,
}

/// An immutable, cheaply cloned list of changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Changes(Option<Rc<Node>>);

impl Changes {
    /// No changes.
    pub(crate) fn none() -> Changes {
        Changes(None)
    }

    /// One change at `path` (relative to the current pair).
    pub(crate) fn one(kind: ChangeKind, path: &[&str]) -> Changes {
        let path = path.iter().map(|s| (*s).to_owned()).collect();
        Changes(Some(Rc::new(Node { compatible: kind.is_compatible(), tree: Tree::Leaf(kind, path) })))
    }

    /// Whether every change in the list is compatible.
    pub(crate) fn is_compatible(&self) -> bool {
        self.0.as_ref().is_none_or(|n| n.compatible)
    }

    /// The same changes, located under `prefix`.
    pub(crate) fn under(self, prefix: &[&str]) -> Changes {
        match self.0 {
            None => Changes(None),
            Some(_) if prefix.is_empty() => self,
            Some(inner) => Changes(Some(Rc::new(Node {
                compatible: inner.compatible,
                tree: Tree::Prefixed(prefix.iter().map(|s| (*s).to_owned()).collect(), inner),
            }))),
        }
    }

    /// The changes of `parts`, in order.
    pub(crate) fn concat(parts: Vec<Changes>) -> Changes {
        let mut nodes: Vec<Rc<Node>> = parts.into_iter().filter_map(|c| c.0).collect();
        match nodes.len() {
            0 => Changes(None),
            1 => Changes(nodes.pop()),
            _ => Changes(Some(Rc::new(Node {
                compatible: nodes.iter().all(|n| n.compatible),
                tree: Tree::Concat(nodes),
            }))),
        }
    }

    /// The flat list, each change with its full pointer (`#/a/b`). Iterative, so deep results
    /// cannot exhaust the stack.
    pub(crate) fn flatten(&self) -> Vec<Diff> {
        let mut out = Vec::new();
        // The location of the node being visited, segments joined by `/` (no `#/`).
        let mut path = String::new();
        // (node, length of `path` that is this node's location)
        let mut stack: Vec<(&Node, usize)> = Vec::new();
        if let Some(root) = &self.0 {
            stack.push((root, 0));
        }
        let append = |path: &mut String, segments: &[String]| {
            for seg in segments {
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(seg);
            }
        };
        while let Some((node, base)) = stack.pop() {
            // Work below `base` never touches `path[..base]`, so truncating restores it.
            path.truncate(base);
            match &node.tree {
                Tree::Leaf(kind, rel) => {
                    let mut pointer = String::with_capacity(2 + path.len() + 24);
                    pointer.push_str("#/");
                    pointer.push_str(&path);
                    for seg in rel {
                        if pointer.len() > 2 {
                            pointer.push('/');
                        }
                        pointer.push_str(seg);
                    }
                    out.push(Diff { kind: *kind, pointer });
                }
                Tree::Prefixed(prefix, inner) => {
                    append(&mut path, prefix);
                    stack.push((inner, path.len()));
                }
                Tree::Concat(parts) => {
                    stack.extend(parts.iter().rev().map(|p| (&**p, path.len())));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChangeKind as K;

    fn rendered(c: &Changes) -> Vec<String> {
        c.flatten().iter().map(|d| format!("{} {}", d.kind.name(), d.pointer)).collect()
    }

    #[test]
    fn nesting_and_order() {
        let inner = Changes::concat(vec![
            Changes::one(K::TypeExtended, &[]),
            Changes::one(K::MinLengthIncreased, &["minLength"]),
        ]);
        let c = Changes::concat(vec![
            Changes::one(K::TitleChanged, &[]),
            inner.clone().under(&["properties", "a"]),
            Changes::none(),
            inner.under(&["items/0"]),
        ]);
        assert!(!c.is_compatible());
        assert_eq!(
            rendered(&c),
            [
                "TITLE_CHANGED #/",
                "TYPE_EXTENDED #/properties/a",
                "MIN_LENGTH_INCREASED #/properties/a/minLength",
                "TYPE_EXTENDED #/items/0",
                "MIN_LENGTH_INCREASED #/items/0/minLength",
            ]
        );
        assert!(Changes::none().is_compatible());
        assert!(Changes::one(K::SumTypeExtended, &[]).is_compatible());
    }
}

//! Introspection queries, told apart before they run.
//!
//! Three things depend on whether a query introspects the schema
//! (`__schema`, `__type`):
//! - when `gateway.introspection` is false it is refused at once with
//!   `FORBIDDEN` and a message that points at the published schema file;
//! - the standard introspection query of GraphiQL and other tools nests
//!   `ofType` deeper than `gateway.max_depth` allows, so a query that is
//!   *only* introspection runs on a schema limited to
//!   [`INTROSPECTION_MAX_DEPTH`] instead;
//! - the depth limit alone does not bound the answer of an introspection
//!   query: each nested list (`types { fields { type { fields … } } }`)
//!   multiplies it. No query may nest more than [`MAX_NESTED_LISTS`] of
//!   introspection's lists along one path (the standard query nests
//!   three: `types`, `fields`, `args`).
//!
//! What this module must not do: execute anything.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Depth allowed to a query made only of introspection.
pub const INTROSPECTION_MAX_DEPTH: usize = 20;

/// Most introspection lists nested along one path.
pub const MAX_NESTED_LISTS: usize = 3;

/// Introspection's fields whose value is a list.
const LIST_FIELDS: &[&str] = &[
    "types",
    "fields",
    "args",
    "inputFields",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "directives",
    "locations",
];

/// Nesting beyond which the walk gives up (fragment cycles are refused by
/// validation later, but this walk runs first).
const WALK_LIMIT: usize = 64;

/// What a query does with introspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Introspection {
    /// It asks for `__schema` or `__type` somewhere at the top.
    pub touches: bool,
    /// Every top-level field is an introspection one (`__schema`,
    /// `__type`, `__typename`).
    pub only: bool,
    /// The most introspection lists nested along one path (`None`: the
    /// query is too deeply nested to tell, or cyclic).
    pub nested_lists: Option<usize>,
}

impl Introspection {
    /// Reads a parsed document.
    pub fn of(doc: &ExecutableDocument) -> Self {
        let mut names = Vec::new();
        let mut nested = Some(0);
        for (_, operation) in doc.operations.iter() {
            top_level(doc, &operation.node.selection_set.node, &mut names, 0);
            nested = match (
                nested,
                lists(doc, &operation.node.selection_set.node, false, 0),
            ) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        let touches = names.iter().any(|n| *n == "__schema" || *n == "__type");
        Self {
            touches,
            only: touches && names.iter().all(|n| n.starts_with("__")),
            nested_lists: nested,
        }
    }

    /// Whether its answer stays bounded.
    pub fn bounded(&self) -> bool {
        self.nested_lists.is_some_and(|n| n <= MAX_NESTED_LISTS)
    }
}

/// The names of the top-level fields, fragments followed.
fn top_level<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    out: &mut Vec<&'a str>,
    walked: usize,
) {
    if walked > WALK_LIMIT {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => out.push(field.node.name.node.as_str()),
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    top_level(doc, &fragment.node.selection_set.node, out, walked + 1);
                }
            }
            Selection::InlineFragment(inline) => {
                top_level(doc, &inline.node.selection_set.node, out, walked + 1);
            }
        }
    }
}

/// The most introspection lists nested along one path below `set`.
fn lists(
    doc: &ExecutableDocument,
    set: &SelectionSet,
    in_introspection: bool,
    walked: usize,
) -> Option<usize> {
    if walked > WALK_LIMIT {
        return None;
    }
    let mut most = 0;
    for item in &set.items {
        let below = match &item.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                let inside = in_introspection || name == "__schema" || name == "__type";
                let here = usize::from(inside && LIST_FIELDS.contains(&name));
                here + lists(doc, &field.node.selection_set.node, inside, walked + 1)?
            }
            Selection::FragmentSpread(spread) => {
                match doc.fragments.get(&spread.node.fragment_name.node) {
                    Some(fragment) => lists(
                        doc,
                        &fragment.node.selection_set.node,
                        in_introspection,
                        walked + 1,
                    )?,
                    None => 0,
                }
            }
            Selection::InlineFragment(inline) => lists(
                doc,
                &inline.node.selection_set.node,
                in_introspection,
                walked + 1,
            )?,
        };
        most = most.max(below);
    }
    Some(most)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use async_graphql::parser::parse_query;

    use super::*;

    fn of(query: &str) -> Introspection {
        Introspection::of(&parse_query(query).unwrap())
    }

    #[test]
    fn tells_introspection_apart() {
        let plain = of("{ viewer { kind } }");
        assert!(!plain.touches && !plain.only && plain.bounded());
        let only = of("query Q { __schema { types { name } } __typename }");
        assert!(only.touches && only.only && only.bounded());
        let mixed = of(
            "{ viewer { kind } ...F } fragment F on Query { __type(name: \"Ticket\") { name } }",
        );
        assert!(mixed.touches && !mixed.only);
        let typename = of("{ __typename }");
        assert!(!typename.touches);
    }

    #[test]
    fn nested_lists_are_counted_through_fragments() {
        let standard = of(
            "{ __schema { types { ...T } directives { name args { name } } } } \
             fragment T on __Type { fields { args { type { ofType { name } } } } inputFields { name } }",
        );
        assert_eq!(standard.nested_lists, Some(3));
        assert!(standard.bounded());
        let bomb = of(
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
        );
        assert_eq!(bomb.nested_lists, Some(4));
        assert!(!bomb.bounded());
        let cyclic = of("{ ...A } fragment A on Query { ...A }");
        assert_eq!(cyclic.nested_lists, None);
    }
}

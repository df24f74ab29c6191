//! Field paths (`Name`, `Account.Name`, `Contact.Account.Owner.Name`, polymorphic `Who.Name`):
//! resolution against the schema, value lookup through parent records, and rendering of
//! selected fields as Salesforce's nested record JSON.

use serde_json::{Map, Value, json};

use super::lexer::{Parser, Token};
use crate::error::RestError;
use crate::ids;
use crate::schema::{FieldType, ObjectDef, Schema};
use crate::store::{Record, Store};

static NULL: Value = Value::Null;

/// A resolved field path: the reference fields to follow, then a field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    /// The path as the caller typed it.
    pub typed: String,
    hops: Vec<Hop>,
    /// The final field's canonical name.
    pub field: &'static str,
    pub field_type: FieldType,
}

#[derive(Debug, Clone, PartialEq)]
struct Hop {
    /// The reference field holding the parent's id (`AccountId`).
    reference_field: &'static str,
    /// The canonical relationship name, used as the JSON key (`Account`).
    relationship: &'static str,
}

impl FieldPath {
    /// The canonical dotted path, for duplicate detection (`Account.Name`).
    pub fn canonical(&self) -> String {
        let mut parts: Vec<&str> = self.hops.iter().map(|hop| hop.relationship).collect();
        parts.push(self.field);
        parts.join(".")
    }

    /// The path to a record's own `Id`.
    pub(crate) fn id() -> Self {
        Self {
            typed: "Id".into(),
            hops: Vec::new(),
            field: "Id",
            field_type: FieldType::Id,
        }
    }
}

/// Why a path does not resolve; each maps to one of Salesforce's INVALID_FIELD messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathError {
    NoSuchColumn {
        column: String,
        entity: &'static str,
    },
    Relationship(String),
}

impl PathError {
    pub fn message(&self) -> String {
        match self {
            Self::NoSuchColumn { column, entity } => format!(
                "No such column '{column}' on entity '{entity}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
            ),
            Self::Relationship(name) => format!(
                "Didn't understand relationship '{name}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
            ),
        }
    }
}

/// Resolves `text` against `object`; case-insensitive, canonical names in the result.
///
/// A leading segment naming the queried object itself (`Account.Name` on Account) is
/// accepted, as SOQL allows, unless it is also a relationship name.
pub(crate) fn resolve(
    text: &str,
    object: &ObjectDef,
    schema: &Schema,
) -> Result<FieldPath, PathError> {
    let mut segments: Vec<&str> = text.split('.').collect();
    if segments.len() > 1
        && object.relationship(segments[0]).is_none()
        && segments[0].eq_ignore_ascii_case(object.name)
    {
        segments.remove(0);
    }
    let Some((last, relationships)) = segments.split_last() else {
        return Err(PathError::NoSuchColumn {
            column: text.to_string(),
            entity: object.name,
        });
    };
    let mut current: Vec<&ObjectDef> = vec![object];
    let mut hops = Vec::new();
    for segment in relationships {
        let reference = current
            .iter()
            .find_map(|candidate| candidate.relationship(segment));
        let Some((reference, relationship)) =
            reference.and_then(|field| field.relationship_name.map(|name| (field, name)))
        else {
            return Err(PathError::Relationship(segment.to_string()));
        };
        hops.push(Hop {
            reference_field: reference.name,
            relationship,
        });
        current = reference
            .reference_to
            .iter()
            .filter_map(|name| schema.object(name))
            .collect();
        if current.is_empty() {
            return Err(PathError::Relationship(segment.to_string()));
        }
    }
    match current.iter().find_map(|candidate| candidate.field(last)) {
        Some(field) => Ok(FieldPath {
            typed: text.to_string(),
            hops,
            field: field.name,
            field_type: field.field_type,
        }),
        None => {
            // Polymorphic parents are described by Salesforce's `Name` entity.
            let entity = match current.as_slice() {
                [single] => single.name,
                _ => "Name",
            };
            Err(PathError::NoSuchColumn {
                column: last.to_string(),
                entity,
            })
        }
    }
}

/// Resolves a path token, turning a failure into Salesforce's caret INVALID_FIELD error.
pub(crate) fn resolve_at(
    parser: &Parser,
    token: &Token,
    object: &ObjectDef,
    schema: &Schema,
) -> Result<FieldPath, RestError> {
    resolve(&token.text, object, schema)
        .map_err(|problem| parser.error_at(token.offset, "INVALID_FIELD", &problem.message()))
}

/// The live parent a reference field points at, if any.
fn parent<'s>(record: &Record, reference_field: &str, store: &'s Store) -> Option<&'s Record> {
    let id = record.get(reference_field).as_str()?;
    let id18 = ids::to_18(id).ok()?;
    store.get(&id18).filter(|parent| !parent.deleted)
}

/// Whether the record's actual type has the field (a polymorphic parent may not).
fn has_field(record: &Record, field: &str, schema: &Schema) -> bool {
    schema
        .object(record.sobject)
        .is_some_and(|object| object.field(field).is_some())
}

/// The value at the end of a path, `Null` when any parent on the way is missing.
pub(crate) fn value<'s>(
    path: &FieldPath,
    record: &'s Record,
    schema: &Schema,
    store: &'s Store,
) -> &'s Value {
    let mut current = record;
    for hop in &path.hops {
        match parent(current, hop.reference_field, store) {
            Some(next) => current = next,
            None => return &NULL,
        }
    }
    if has_field(current, path.field, schema) {
        current.get(path.field)
    } else {
        &NULL
    }
}

/// Selected fields as a tree, so `Account.Name, Account.Phone` render one nested `Account`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Field(&'static str),
    Parent {
        relationship: &'static str,
        reference_field: &'static str,
        children: Selection,
    },
}

impl Selection {
    /// Builds the tree in first-mention order; repeated paths are kept once.
    pub fn new(paths: &[FieldPath]) -> Self {
        let mut selection = Self::default();
        for path in paths {
            selection.insert(&path.hops, path.field);
        }
        selection
    }

    fn insert(&mut self, hops: &[Hop], field: &'static str) {
        match hops.split_first() {
            None => {
                if !self.nodes.contains(&Node::Field(field)) {
                    self.nodes.push(Node::Field(field));
                }
            }
            Some((hop, rest)) => {
                let existing = self.nodes.iter_mut().find_map(|node| match node {
                    Node::Parent {
                        relationship,
                        children,
                        ..
                    } if *relationship == hop.relationship => Some(children),
                    _ => None,
                });
                match existing {
                    Some(children) => children.insert(rest, field),
                    None => {
                        let mut children = Self::default();
                        children.insert(rest, field);
                        self.nodes.push(Node::Parent {
                            relationship: hop.relationship,
                            reference_field: hop.reference_field,
                            children,
                        });
                    }
                }
            }
        }
    }
}

/// `{"type": …, "url": "/services/data/vXX.X/sobjects/Type/Id"}`.
pub(crate) fn attributes(record: &Record, api_version: &str) -> Value {
    json!({
        "type": record.sobject,
        "url": format!("/services/data/v{api_version}/sobjects/{}/{}", record.sobject, record.id),
    })
}

/// Renders the selected fields of a record as query and search results show them:
/// `attributes` first, then the fields in selection order under their canonical names, with
/// parents as nested records (or `null` when the reference is empty).
pub fn render_record(
    record: &Record,
    selection: &Selection,
    schema: &Schema,
    store: &Store,
    api_version: &str,
) -> Value {
    let mut map = Map::new();
    map.insert("attributes".into(), attributes(record, api_version));
    for node in &selection.nodes {
        match node {
            Node::Field(field) => {
                let value = if has_field(record, field, schema) {
                    record.get(field).clone()
                } else {
                    Value::Null
                };
                map.insert((*field).to_string(), value);
            }
            Node::Parent {
                relationship,
                reference_field,
                children,
            } => {
                let value = parent(record, reference_field, store).map_or(Value::Null, |parent| {
                    render_record(parent, children, schema, store, api_version)
                });
                map.insert((*relationship).to_string(), value);
            }
        }
    }
    Value::Object(map)
}

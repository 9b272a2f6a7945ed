//! The directory of a tenant: what a citizen can address. Departments and
//! officials (a person or office a question can be put to) and topics (what a
//! citizen can subscribe to: "roadworks", "cultural agenda", "taxes").
//!
//! One [`Directory`] aggregate per tenant, in the stream `directory` owned by
//! the tenant's id. This module decides and records changes to the directory
//! and answers questions about its current state (does this official accept
//! public questions?); it must not do I/O, read a clock or draw ids: new ids
//! travel inside the commands, and names arrive already parsed as [`Name`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

use crate::values::{InvalidValue, Name};

/// The longest department name, official name and official role, in characters.
pub const NAME_MAX: usize = 120;
/// The longest topic name, in characters.
pub const TOPIC_NAME_MAX: usize = 80;
/// The longest description of a department or topic, in characters.
pub const DESCRIPTION_MAX: usize = 1000;
/// The most live departments a tenant may have.
pub const MAX_DEPARTMENTS: usize = 200;
/// The most live officials a tenant may have.
pub const MAX_OFFICIALS: usize = 2000;
/// The most live topics a tenant may have.
pub const MAX_TOPICS: usize = 500;

/// The stream of a tenant's directory: `directory` (streams are per tenant,
/// so the name needs no id).
pub fn stream_id() -> Result<StreamId, StreamIdError> {
    StreamId::parse("directory")
}

ventanilla_kernel::uuid_newtype!(
    /// A department of the tenant (e.g. "Urbanismo").
    DepartmentId
);
ventanilla_kernel::uuid_newtype!(
    /// An official: a person or office a citizen can address a question to.
    OfficialId
);
ventanilla_kernel::uuid_newtype!(
    /// A topic a citizen can subscribe to.
    TopicId
);

/// The directory aggregate of one tenant.
pub struct Directory;

/// What can be asked of a directory. Names are already parsed; their length
/// limits ([`NAME_MAX`], [`TOPIC_NAME_MAX`], [`DESCRIPTION_MAX`]) are checked
/// again here, so an over-long name is refused whoever parsed it.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectoryCommand {
    /// Adds a department. Refused when the id was ever used, the name is
    /// taken by a live department, or the tenant has [`MAX_DEPARTMENTS`].
    AddDepartment {
        /// The new department's id.
        id: DepartmentId,
        /// Its name, unique among live departments (ignoring case).
        name: Name,
        /// What it deals with.
        description: Option<Name>,
    },
    /// Renames a live department. Renaming to the very same name is a no-op.
    RenameDepartment {
        /// The department.
        id: DepartmentId,
        /// Its new name.
        name: Name,
    },
    /// Replaces (or, with `None`, clears) a live department's description.
    /// Sending the description it already has is a no-op.
    DescribeDepartment {
        /// The department.
        id: DepartmentId,
        /// What it deals with, or `None` for no description.
        description: Option<Name>,
    },
    /// Removes a department that no official belongs to. Removing an already
    /// removed department is a no-op (a retried request).
    RemoveDepartment {
        /// The department.
        id: DepartmentId,
    },
    /// Adds an official. Refused when the id was ever used, the department
    /// is not a live one, or the tenant has [`MAX_OFFICIALS`].
    AddOfficial {
        /// The new official's id.
        id: OfficialId,
        /// The person's or office's name.
        name: Name,
        /// Their role, e.g. "Concejala de Urbanismo".
        role: Name,
        /// The department they belong to, if any.
        department: Option<DepartmentId>,
        /// Whether citizens may address public questions to them.
        accepts_public_questions: bool,
    },
    /// Replaces everything about a live official. Sending exactly what is
    /// already recorded is a no-op.
    UpdateOfficial {
        /// The official.
        id: OfficialId,
        /// Their name.
        name: Name,
        /// Their role.
        role: Name,
        /// Their department, if any.
        department: Option<DepartmentId>,
        /// Whether citizens may address public questions to them.
        accepts_public_questions: bool,
    },
    /// Removes an official. Removing an already removed official is a no-op.
    RemoveOfficial {
        /// The official.
        id: OfficialId,
    },
    /// Adds a topic. Refused when the id was ever used, the name is taken by
    /// a live topic, or the tenant has [`MAX_TOPICS`].
    AddTopic {
        /// The new topic's id.
        id: TopicId,
        /// Its name, unique among live topics (ignoring case).
        name: Name,
        /// What subscribers will hear about.
        description: Option<Name>,
    },
    /// Renames a live topic. Renaming to the very same name is a no-op.
    RenameTopic {
        /// The topic.
        id: TopicId,
        /// Its new name.
        name: Name,
    },
    /// Replaces (or, with `None`, clears) a live topic's description.
    /// Sending the description it already has is a no-op.
    DescribeTopic {
        /// The topic.
        id: TopicId,
        /// What subscribers will hear about, or `None` for no description.
        description: Option<Name>,
    },
    /// Removes a topic. Removing an already removed topic is a no-op.
    RemoveTopic {
        /// The topic.
        id: TopicId,
    },
}

/// A department was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentAdded {
    /// The department.
    pub id: DepartmentId,
    /// Its name.
    pub name: Name,
    /// What it deals with.
    pub description: Option<Name>,
}

/// A department was renamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentRenamed {
    /// The department.
    pub id: DepartmentId,
    /// Its new name.
    pub name: Name,
    /// The name it had before.
    pub previous_name: Name,
}

/// A department's description was replaced or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentDescribed {
    /// The department.
    pub id: DepartmentId,
    /// Its description now; `None` when it was cleared.
    pub description: Option<Name>,
}

/// A department was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentRemoved {
    /// The department.
    pub id: DepartmentId,
    /// The name it had.
    pub name: Name,
}

/// An official was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfficialAdded {
    /// The official.
    pub id: OfficialId,
    /// Their name.
    pub name: Name,
    /// Their role.
    pub role: Name,
    /// Their department, if any.
    pub department: Option<DepartmentId>,
    /// Whether citizens may address public questions to them.
    pub accepts_public_questions: bool,
}

/// An official's details were replaced (the payload is the whole official).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfficialUpdated {
    /// The official.
    pub id: OfficialId,
    /// Their name.
    pub name: Name,
    /// Their role.
    pub role: Name,
    /// Their department, if any.
    pub department: Option<DepartmentId>,
    /// Whether citizens may address public questions to them.
    pub accepts_public_questions: bool,
}

/// An official was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfficialRemoved {
    /// The official.
    pub id: OfficialId,
    /// The name they had.
    pub name: Name,
    /// The department they belonged to, if any.
    pub department: Option<DepartmentId>,
}

/// A topic was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicAdded {
    /// The topic.
    pub id: TopicId,
    /// Its name.
    pub name: Name,
    /// What subscribers will hear about.
    pub description: Option<Name>,
}

/// A topic was renamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicRenamed {
    /// The topic.
    pub id: TopicId,
    /// Its new name.
    pub name: Name,
    /// The name it had before.
    pub previous_name: Name,
}

/// A topic's description was replaced or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicDescribed {
    /// The topic.
    pub id: TopicId,
    /// Its description now; `None` when it was cleared.
    pub description: Option<Name>,
}

/// A topic was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicRemoved {
    /// The topic.
    pub id: TopicId,
    /// The name it had.
    pub name: Name,
}

/// What the directory records.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectoryEvent {
    /// `directory.department_added`
    DepartmentAdded(DepartmentAdded),
    /// `directory.department_renamed`
    DepartmentRenamed(DepartmentRenamed),
    /// `directory.department_described`
    DepartmentDescribed(DepartmentDescribed),
    /// `directory.department_removed`
    DepartmentRemoved(DepartmentRemoved),
    /// `directory.official_added`
    OfficialAdded(OfficialAdded),
    /// `directory.official_updated`
    OfficialUpdated(OfficialUpdated),
    /// `directory.official_removed`
    OfficialRemoved(OfficialRemoved),
    /// `directory.topic_added`
    TopicAdded(TopicAdded),
    /// `directory.topic_renamed`
    TopicRenamed(TopicRenamed),
    /// `directory.topic_described`
    TopicDescribed(TopicDescribed),
    /// `directory.topic_removed`
    TopicRemoved(TopicRemoved),
}

const DEPARTMENT_ADDED: &str = "directory.department_added";
const DEPARTMENT_RENAMED: &str = "directory.department_renamed";
const DEPARTMENT_DESCRIBED: &str = "directory.department_described";
const DEPARTMENT_REMOVED: &str = "directory.department_removed";
const OFFICIAL_ADDED: &str = "directory.official_added";
const OFFICIAL_UPDATED: &str = "directory.official_updated";
const OFFICIAL_REMOVED: &str = "directory.official_removed";
const TOPIC_ADDED: &str = "directory.topic_added";
const TOPIC_RENAMED: &str = "directory.topic_renamed";
const TOPIC_DESCRIBED: &str = "directory.topic_described";
const TOPIC_REMOVED: &str = "directory.topic_removed";

/// Reads a stored payload of schema version 1.
fn payload<T: DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    ventanilla_eventlog::decode_payload(event_type, schema_version, 1, data)
}

impl DomainEvent for DirectoryEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::DepartmentAdded(_) => DEPARTMENT_ADDED,
            Self::DepartmentRenamed(_) => DEPARTMENT_RENAMED,
            Self::DepartmentDescribed(_) => DEPARTMENT_DESCRIBED,
            Self::DepartmentRemoved(_) => DEPARTMENT_REMOVED,
            Self::OfficialAdded(_) => OFFICIAL_ADDED,
            Self::OfficialUpdated(_) => OFFICIAL_UPDATED,
            Self::OfficialRemoved(_) => OFFICIAL_REMOVED,
            Self::TopicAdded(_) => TOPIC_ADDED,
            Self::TopicRenamed(_) => TOPIC_RENAMED,
            Self::TopicDescribed(_) => TOPIC_DESCRIBED,
            Self::TopicRemoved(_) => TOPIC_REMOVED,
        }
    }

    fn to_data(&self) -> Value {
        match self {
            Self::DepartmentAdded(p) => serde_json::to_value(p),
            Self::DepartmentRenamed(p) => serde_json::to_value(p),
            Self::DepartmentDescribed(p) => serde_json::to_value(p),
            Self::DepartmentRemoved(p) => serde_json::to_value(p),
            Self::OfficialAdded(p) => serde_json::to_value(p),
            Self::OfficialUpdated(p) => serde_json::to_value(p),
            Self::OfficialRemoved(p) => serde_json::to_value(p),
            Self::TopicAdded(p) => serde_json::to_value(p),
            Self::TopicRenamed(p) => serde_json::to_value(p),
            Self::TopicDescribed(p) => serde_json::to_value(p),
            Self::TopicRemoved(p) => serde_json::to_value(p),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        let (t, v) = (event_type, schema_version);
        match t {
            DEPARTMENT_ADDED => payload(t, v, data).map(Self::DepartmentAdded),
            DEPARTMENT_RENAMED => payload(t, v, data).map(Self::DepartmentRenamed),
            DEPARTMENT_DESCRIBED => payload(t, v, data).map(Self::DepartmentDescribed),
            DEPARTMENT_REMOVED => payload(t, v, data).map(Self::DepartmentRemoved),
            OFFICIAL_ADDED => payload(t, v, data).map(Self::OfficialAdded),
            OFFICIAL_UPDATED => payload(t, v, data).map(Self::OfficialUpdated),
            OFFICIAL_REMOVED => payload(t, v, data).map(Self::OfficialRemoved),
            TOPIC_ADDED => payload(t, v, data).map(Self::TopicAdded),
            TOPIC_RENAMED => payload(t, v, data).map(Self::TopicRenamed),
            TOPIC_DESCRIBED => payload(t, v, data).map(Self::TopicDescribed),
            TOPIC_REMOVED => payload(t, v, data).map(Self::TopicRemoved),
            _ => Err(UpcastError {
                event_type: t.to_owned(),
                schema_version: v,
                reason: "not a directory event".to_owned(),
            }),
        }
    }
}

/// Why the directory refuses a command (or a question about it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// A name, role or description breaks its length limit.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// A live department or topic already has this name (ignoring case).
    #[error("there is already a {what} named {name:?}; choose another name")]
    DuplicateName {
        /// `department` or `topic`.
        what: &'static str,
        /// The name asked for.
        name: Name,
    },
    /// No live department has this id.
    #[error("there is no department {id}; pick one of the tenant's departments")]
    UnknownDepartment {
        /// The id given.
        id: DepartmentId,
    },
    /// No live official has this id.
    #[error("there is no official {id}; pick one of the tenant's officials")]
    UnknownOfficial {
        /// The id given.
        id: OfficialId,
    },
    /// No live topic has this id.
    #[error("there is no topic {id}; pick one of the tenant's topics")]
    UnknownTopic {
        /// The id given.
        id: TopicId,
    },
    /// The id of a new entry is, or was, already used by another.
    #[error("the id {id} is already used; give the new entry a new id")]
    IdInUse {
        /// The id given.
        id: Uuid,
    },
    /// A department cannot be removed while officials belong to it.
    #[error("the department {id} still has {officials} official(s); move or remove them first")]
    DepartmentHasOfficials {
        /// The department.
        id: DepartmentId,
        /// How many officials belong to it.
        officials: usize,
    },
    /// The tenant already has as many entries of this kind as allowed.
    #[error("a tenant can have at most {max} {what}; remove one first")]
    TooMany {
        /// `departments`, `officials` or `topics`.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The official does not take public questions.
    #[error(
        "the official {id} does not accept public questions; address the question to another official or a department"
    )]
    OfficialNotAcceptingQuestions {
        /// The official.
        id: OfficialId,
    },
}

/// A live department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// Its id.
    pub id: DepartmentId,
    /// Its name.
    pub name: Name,
    /// What it deals with.
    pub description: Option<Name>,
}

/// A live official.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Official {
    /// Their id.
    pub id: OfficialId,
    /// Their name.
    pub name: Name,
    /// Their role.
    pub role: Name,
    /// Their department, if any.
    pub department: Option<DepartmentId>,
    /// Whether citizens may address public questions to them.
    pub accepts_public_questions: bool,
}

/// A live topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// Its id.
    pub id: TopicId,
    /// Its name.
    pub name: Name,
    /// What subscribers will hear about.
    pub description: Option<Name>,
}

/// What the directory remembers: the live entries, and the ids of removed
/// ones (never reused).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DirectoryState {
    departments: BTreeMap<DepartmentId, Department>,
    officials: BTreeMap<OfficialId, Official>,
    topics: BTreeMap<TopicId, Topic>,
    removed_departments: BTreeSet<DepartmentId>,
    removed_officials: BTreeSet<OfficialId>,
    removed_topics: BTreeSet<TopicId>,
}

impl DirectoryState {
    /// A live department.
    pub fn department(&self, id: DepartmentId) -> Option<&Department> {
        self.departments.get(&id)
    }

    /// A live official.
    pub fn official(&self, id: OfficialId) -> Option<&Official> {
        self.officials.get(&id)
    }

    /// A live topic.
    pub fn topic(&self, id: TopicId) -> Option<&Topic> {
        self.topics.get(&id)
    }

    /// The live departments, by id.
    pub fn departments(&self) -> impl Iterator<Item = &Department> {
        self.departments.values()
    }

    /// The live officials, by id.
    pub fn officials(&self) -> impl Iterator<Item = &Official> {
        self.officials.values()
    }

    /// The live topics, by id.
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.values()
    }

    /// The live officials who belong to `department`.
    pub fn officials_of(&self, department: DepartmentId) -> impl Iterator<Item = &Official> {
        self.officials
            .values()
            .filter(move |o| o.department == Some(department))
    }

    /// Whether a citizen may address a public question to this official:
    /// `UnknownOfficial` when there is no such live official,
    /// `OfficialNotAcceptingQuestions` when they do not take them.
    pub fn accepts_questions_for_official(&self, id: OfficialId) -> Result<(), DirectoryError> {
        match self.officials.get(&id) {
            None => Err(DirectoryError::UnknownOfficial { id }),
            Some(o) if !o.accepts_public_questions => {
                Err(DirectoryError::OfficialNotAcceptingQuestions { id })
            }
            Some(_) => Ok(()),
        }
    }

    fn department_id_used(&self, id: DepartmentId) -> bool {
        self.departments.contains_key(&id) || self.removed_departments.contains(&id)
    }

    fn official_id_used(&self, id: OfficialId) -> bool {
        self.officials.contains_key(&id) || self.removed_officials.contains(&id)
    }

    fn topic_id_used(&self, id: TopicId) -> bool {
        self.topics.contains_key(&id) || self.removed_topics.contains(&id)
    }

    fn check_department(&self, department: Option<DepartmentId>) -> Result<(), DirectoryError> {
        match department {
            Some(id) if !self.departments.contains_key(&id) => {
                Err(DirectoryError::UnknownDepartment { id })
            }
            _ => Ok(()),
        }
    }

    /// Refuses `name` if a live department other than `except` has it.
    fn check_department_name(
        &self,
        name: &Name,
        except: Option<DepartmentId>,
    ) -> Result<(), DirectoryError> {
        let key = name_key(name);
        let taken = self
            .departments
            .values()
            .any(|d| Some(d.id) != except && name_key(&d.name) == key);
        if taken {
            return Err(DirectoryError::DuplicateName {
                what: "department",
                name: name.clone(),
            });
        }
        Ok(())
    }

    /// Refuses `name` if a live topic other than `except` has it.
    fn check_topic_name(&self, name: &Name, except: Option<TopicId>) -> Result<(), DirectoryError> {
        let key = name_key(name);
        let taken = self
            .topics
            .values()
            .any(|t| Some(t.id) != except && name_key(&t.name) == key);
        if taken {
            return Err(DirectoryError::DuplicateName {
                what: "topic",
                name: name.clone(),
            });
        }
        Ok(())
    }
}

/// What two names are compared by: trimmed and lowercased.
fn name_key(name: &Name) -> String {
    name.as_str().trim().to_lowercase()
}

/// Checks a name against the limits of `field` (whoever parsed it).
fn check_name(field: &'static str, name: &Name, max: usize) -> Result<(), DirectoryError> {
    Name::parse(field, name.as_str(), max)?;
    Ok(())
}

fn check_description(description: Option<&Name>) -> Result<(), DirectoryError> {
    description.map_or(Ok(()), |d| check_name("description", d, DESCRIPTION_MAX))
}

impl Decider for Directory {
    type State = DirectoryState;
    type Command = DirectoryCommand;
    type Event = DirectoryEvent;
    type Error = DirectoryError;

    fn decide(
        state: &DirectoryState,
        command: &DirectoryCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<DirectoryEvent>, DirectoryError> {
        use DirectoryCommand as C;
        use DirectoryEvent as E;
        match command {
            C::AddDepartment {
                id,
                name,
                description,
            } => {
                check_name("name", name, NAME_MAX)?;
                check_description(description.as_ref())?;
                if state.department_id_used(*id) {
                    return Err(DirectoryError::IdInUse { id: id.0 });
                }
                if state.departments.len() >= MAX_DEPARTMENTS {
                    return Err(DirectoryError::TooMany {
                        what: "departments",
                        max: MAX_DEPARTMENTS,
                    });
                }
                state.check_department_name(name, None)?;
                Ok(vec![E::DepartmentAdded(DepartmentAdded {
                    id: *id,
                    name: name.clone(),
                    description: description.clone(),
                })])
            }
            C::RenameDepartment { id, name } => {
                check_name("name", name, NAME_MAX)?;
                let department = state
                    .department(*id)
                    .ok_or(DirectoryError::UnknownDepartment { id: *id })?;
                if department.name == *name {
                    return Ok(vec![]);
                }
                state.check_department_name(name, Some(*id))?;
                Ok(vec![E::DepartmentRenamed(DepartmentRenamed {
                    id: *id,
                    name: name.clone(),
                    previous_name: department.name.clone(),
                })])
            }
            C::DescribeDepartment { id, description } => {
                check_description(description.as_ref())?;
                let department = state
                    .department(*id)
                    .ok_or(DirectoryError::UnknownDepartment { id: *id })?;
                if department.description == *description {
                    return Ok(vec![]);
                }
                Ok(vec![E::DepartmentDescribed(DepartmentDescribed {
                    id: *id,
                    description: description.clone(),
                })])
            }
            C::RemoveDepartment { id } => {
                if state.removed_departments.contains(id) {
                    return Ok(vec![]);
                }
                let department = state
                    .department(*id)
                    .ok_or(DirectoryError::UnknownDepartment { id: *id })?;
                let officials = state.officials_of(*id).count();
                if officials > 0 {
                    return Err(DirectoryError::DepartmentHasOfficials { id: *id, officials });
                }
                Ok(vec![E::DepartmentRemoved(DepartmentRemoved {
                    id: *id,
                    name: department.name.clone(),
                })])
            }
            C::AddOfficial {
                id,
                name,
                role,
                department,
                accepts_public_questions,
            } => {
                check_name("name", name, NAME_MAX)?;
                check_name("role", role, NAME_MAX)?;
                if state.official_id_used(*id) {
                    return Err(DirectoryError::IdInUse { id: id.0 });
                }
                if state.officials.len() >= MAX_OFFICIALS {
                    return Err(DirectoryError::TooMany {
                        what: "officials",
                        max: MAX_OFFICIALS,
                    });
                }
                state.check_department(*department)?;
                Ok(vec![E::OfficialAdded(OfficialAdded {
                    id: *id,
                    name: name.clone(),
                    role: role.clone(),
                    department: *department,
                    accepts_public_questions: *accepts_public_questions,
                })])
            }
            C::UpdateOfficial {
                id,
                name,
                role,
                department,
                accepts_public_questions,
            } => {
                check_name("name", name, NAME_MAX)?;
                check_name("role", role, NAME_MAX)?;
                let current = state
                    .official(*id)
                    .ok_or(DirectoryError::UnknownOfficial { id: *id })?;
                state.check_department(*department)?;
                let updated = Official {
                    id: *id,
                    name: name.clone(),
                    role: role.clone(),
                    department: *department,
                    accepts_public_questions: *accepts_public_questions,
                };
                if *current == updated {
                    return Ok(vec![]);
                }
                Ok(vec![E::OfficialUpdated(OfficialUpdated {
                    id: updated.id,
                    name: updated.name,
                    role: updated.role,
                    department: updated.department,
                    accepts_public_questions: updated.accepts_public_questions,
                })])
            }
            C::RemoveOfficial { id } => {
                if state.removed_officials.contains(id) {
                    return Ok(vec![]);
                }
                let official = state
                    .official(*id)
                    .ok_or(DirectoryError::UnknownOfficial { id: *id })?;
                Ok(vec![E::OfficialRemoved(OfficialRemoved {
                    id: *id,
                    name: official.name.clone(),
                    department: official.department,
                })])
            }
            C::AddTopic {
                id,
                name,
                description,
            } => {
                check_name("name", name, TOPIC_NAME_MAX)?;
                check_description(description.as_ref())?;
                if state.topic_id_used(*id) {
                    return Err(DirectoryError::IdInUse { id: id.0 });
                }
                if state.topics.len() >= MAX_TOPICS {
                    return Err(DirectoryError::TooMany {
                        what: "topics",
                        max: MAX_TOPICS,
                    });
                }
                state.check_topic_name(name, None)?;
                Ok(vec![E::TopicAdded(TopicAdded {
                    id: *id,
                    name: name.clone(),
                    description: description.clone(),
                })])
            }
            C::RenameTopic { id, name } => {
                check_name("name", name, TOPIC_NAME_MAX)?;
                let topic = state
                    .topic(*id)
                    .ok_or(DirectoryError::UnknownTopic { id: *id })?;
                if topic.name == *name {
                    return Ok(vec![]);
                }
                state.check_topic_name(name, Some(*id))?;
                Ok(vec![E::TopicRenamed(TopicRenamed {
                    id: *id,
                    name: name.clone(),
                    previous_name: topic.name.clone(),
                })])
            }
            C::DescribeTopic { id, description } => {
                check_description(description.as_ref())?;
                let topic = state
                    .topic(*id)
                    .ok_or(DirectoryError::UnknownTopic { id: *id })?;
                if topic.description == *description {
                    return Ok(vec![]);
                }
                Ok(vec![E::TopicDescribed(TopicDescribed {
                    id: *id,
                    description: description.clone(),
                })])
            }
            C::RemoveTopic { id } => {
                if state.removed_topics.contains(id) {
                    return Ok(vec![]);
                }
                let topic = state
                    .topic(*id)
                    .ok_or(DirectoryError::UnknownTopic { id: *id })?;
                Ok(vec![E::TopicRemoved(TopicRemoved {
                    id: *id,
                    name: topic.name.clone(),
                })])
            }
        }
    }

    fn evolve(mut state: DirectoryState, event: &DirectoryEvent) -> DirectoryState {
        match event {
            DirectoryEvent::DepartmentAdded(e) => {
                state.departments.insert(
                    e.id,
                    Department {
                        id: e.id,
                        name: e.name.clone(),
                        description: e.description.clone(),
                    },
                );
            }
            DirectoryEvent::DepartmentRenamed(e) => {
                if let Some(d) = state.departments.get_mut(&e.id) {
                    d.name = e.name.clone();
                }
            }
            DirectoryEvent::DepartmentDescribed(e) => {
                if let Some(d) = state.departments.get_mut(&e.id) {
                    d.description = e.description.clone();
                }
            }
            DirectoryEvent::DepartmentRemoved(e) => {
                state.departments.remove(&e.id);
                state.removed_departments.insert(e.id);
            }
            DirectoryEvent::OfficialAdded(OfficialAdded {
                id,
                name,
                role,
                department,
                accepts_public_questions,
            })
            | DirectoryEvent::OfficialUpdated(OfficialUpdated {
                id,
                name,
                role,
                department,
                accepts_public_questions,
            }) => {
                state.officials.insert(
                    *id,
                    Official {
                        id: *id,
                        name: name.clone(),
                        role: role.clone(),
                        department: *department,
                        accepts_public_questions: *accepts_public_questions,
                    },
                );
            }
            DirectoryEvent::OfficialRemoved(e) => {
                state.officials.remove(&e.id);
                state.removed_officials.insert(e.id);
            }
            DirectoryEvent::TopicAdded(e) => {
                state.topics.insert(
                    e.id,
                    Topic {
                        id: e.id,
                        name: e.name.clone(),
                        description: e.description.clone(),
                    },
                );
            }
            DirectoryEvent::TopicRenamed(e) => {
                if let Some(t) = state.topics.get_mut(&e.id) {
                    t.name = e.name.clone();
                }
            }
            DirectoryEvent::TopicDescribed(e) => {
                if let Some(t) = state.topics.get_mut(&e.id) {
                    t.description = e.description.clone();
                }
            }
            DirectoryEvent::TopicRemoved(e) => {
                state.topics.remove(&e.id);
                state.removed_topics.insert(e.id);
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ventanilla_eventlog::testing::given;

    use DirectoryCommand as C;
    use DirectoryEvent as E;

    fn n(s: &str) -> Name {
        Name::parse("name", s, 5000).unwrap()
    }

    fn dep(i: u128) -> DepartmentId {
        DepartmentId(Uuid::from_u128(i))
    }

    fn off(i: u128) -> OfficialId {
        OfficialId(Uuid::from_u128(1_000_000 + i))
    }

    fn top(i: u128) -> TopicId {
        TopicId(Uuid::from_u128(2_000_000 + i))
    }

    fn dep_added(i: u128, name: &str) -> DirectoryEvent {
        E::DepartmentAdded(DepartmentAdded {
            id: dep(i),
            name: n(name),
            description: None,
        })
    }

    fn off_added(i: u128, department: Option<u128>, accepts: bool) -> DirectoryEvent {
        E::OfficialAdded(OfficialAdded {
            id: off(i),
            name: n(&format!("Official {i}")),
            role: n("Concejala de Urbanismo"),
            department: department.map(dep),
            accepts_public_questions: accepts,
        })
    }

    fn top_added(i: u128, name: &str) -> DirectoryEvent {
        E::TopicAdded(TopicAdded {
            id: top(i),
            name: n(name),
            description: None,
        })
    }

    fn add_official(i: u128, department: Option<u128>) -> DirectoryCommand {
        C::AddOfficial {
            id: off(i),
            name: n(&format!("Official {i}")),
            role: n("Concejala de Urbanismo"),
            department: department.map(dep),
            accepts_public_questions: true,
        }
    }

    fn update_official(i: u128, name: &str, department: Option<u128>) -> DirectoryCommand {
        C::UpdateOfficial {
            id: off(i),
            name: n(name),
            role: n("Alcaldesa"),
            department: department.map(dep),
            accepts_public_questions: false,
        }
    }

    fn too_long(field: &'static str) -> impl FnOnce(&DirectoryError) -> bool {
        move |e| matches!(e, DirectoryError::Invalid(v) if v.field == field)
    }

    #[test]
    fn the_stream_is_directory() {
        assert_eq!(stream_id().unwrap().as_str(), "directory");
    }

    // --- AddDepartment

    #[test]
    fn adds_a_department() {
        given::<Directory>(vec![])
            .when(&C::AddDepartment {
                id: dep(1),
                name: n("Urbanismo"),
                description: Some(n("Licencias y obras")),
            })
            .then(vec![E::DepartmentAdded(DepartmentAdded {
                id: dep(1),
                name: n("Urbanismo"),
                description: Some(n("Licencias y obras")),
            })]);
    }

    #[test]
    fn refuses_a_department_name_taken_ignoring_case_and_spaces() {
        given::<Directory>(vec![dep_added(1, "Urbanismo")])
            .when(&C::AddDepartment {
                id: dep(2),
                name: n("  URBANISMO "),
                description: None,
            })
            .then_error(|e| {
                matches!(e, DirectoryError::DuplicateName { what: "department", name } if name.as_str() == "URBANISMO")
            });
    }

    #[test]
    fn a_removed_departments_name_can_be_used_again_but_not_its_id() {
        let removed = E::DepartmentRemoved(DepartmentRemoved {
            id: dep(1),
            name: n("Urbanismo"),
        });
        given::<Directory>(vec![dep_added(1, "Urbanismo"), removed.clone()])
            .when(&C::AddDepartment {
                id: dep(2),
                name: n("Urbanismo"),
                description: None,
            })
            .then(vec![dep_added(2, "Urbanismo")]);
        given::<Directory>(vec![dep_added(1, "Urbanismo"), removed])
            .when(&C::AddDepartment {
                id: dep(1),
                name: n("Cultura"),
                description: None,
            })
            .then_error(|e| *e == DirectoryError::IdInUse { id: dep(1).0 });
    }

    #[test]
    fn refuses_a_department_id_in_use() {
        given::<Directory>(vec![dep_added(1, "Urbanismo")])
            .when(&C::AddDepartment {
                id: dep(1),
                name: n("Cultura"),
                description: None,
            })
            .then_error(|e| matches!(e, DirectoryError::IdInUse { .. }));
    }

    #[test]
    fn refuses_the_201st_department() {
        let history = (0..200).map(|i| dep_added(i, &format!("D{i}"))).collect();
        given::<Directory>(history)
            .when(&C::AddDepartment {
                id: dep(999),
                name: n("One too many"),
                description: None,
            })
            .then_error(|e| {
                *e == DirectoryError::TooMany {
                    what: "departments",
                    max: 200,
                }
            });
    }

    #[test]
    fn refuses_an_over_long_department_name_or_description() {
        given::<Directory>(vec![])
            .when(&C::AddDepartment {
                id: dep(1),
                name: n(&"x".repeat(121)),
                description: None,
            })
            .then_error(too_long("name"));
        given::<Directory>(vec![])
            .when(&C::AddDepartment {
                id: dep(1),
                name: n("Urbanismo"),
                description: Some(n(&"x".repeat(1001))),
            })
            .then_error(too_long("description"));
    }

    // --- RenameDepartment

    #[test]
    fn renames_a_department() {
        given::<Directory>(vec![dep_added(1, "Urbanismo")])
            .when(&C::RenameDepartment {
                id: dep(1),
                name: n("Urbanismo y Vivienda"),
            })
            .then(vec![E::DepartmentRenamed(DepartmentRenamed {
                id: dep(1),
                name: n("Urbanismo y Vivienda"),
                previous_name: n("Urbanismo"),
            })]);
    }

    #[test]
    fn renaming_to_the_same_name_is_a_no_op_but_a_change_of_case_is_recorded() {
        given::<Directory>(vec![dep_added(1, "Urbanismo")])
            .when(&C::RenameDepartment {
                id: dep(1),
                name: n("Urbanismo"),
            })
            .then(vec![]);
        given::<Directory>(vec![dep_added(1, "urbanismo")])
            .when(&C::RenameDepartment {
                id: dep(1),
                name: n("Urbanismo"),
            })
            .then(vec![E::DepartmentRenamed(DepartmentRenamed {
                id: dep(1),
                name: n("Urbanismo"),
                previous_name: n("urbanismo"),
            })]);
    }

    #[test]
    fn refuses_renaming_a_department_to_a_taken_name() {
        given::<Directory>(vec![dep_added(1, "Urbanismo"), dep_added(2, "Cultura")])
            .when(&C::RenameDepartment {
                id: dep(2),
                name: n("urbanismo"),
            })
            .then_error(|e| matches!(e, DirectoryError::DuplicateName { .. }));
    }

    #[test]
    fn refuses_renaming_an_unknown_or_removed_department() {
        given::<Directory>(vec![])
            .when(&C::RenameDepartment {
                id: dep(1),
                name: n("Cultura"),
            })
            .then_error(|e| *e == DirectoryError::UnknownDepartment { id: dep(1) });
        given::<Directory>(vec![
            dep_added(1, "Urbanismo"),
            E::DepartmentRemoved(DepartmentRemoved {
                id: dep(1),
                name: n("Urbanismo"),
            }),
        ])
        .when(&C::RenameDepartment {
            id: dep(1),
            name: n("Cultura"),
        })
        .then_error(|e| *e == DirectoryError::UnknownDepartment { id: dep(1) });
    }

    #[test]
    fn refuses_an_over_long_new_department_name() {
        given::<Directory>(vec![dep_added(1, "Urbanismo")])
            .when(&C::RenameDepartment {
                id: dep(1),
                name: n(&"x".repeat(121)),
            })
            .then_error(too_long("name"));
    }

    // --- DescribeDepartment

    #[test]
    fn describes_a_department_and_clears_its_description() {
        given::<Directory>(vec![dep_added(1, "Urbanismo")])
            .when(&C::DescribeDepartment {
                id: dep(1),
                description: Some(n("Licencias y obras")),
            })
            .then(vec![E::DepartmentDescribed(DepartmentDescribed {
                id: dep(1),
                description: Some(n("Licencias y obras")),
            })]);
        let described = E::DepartmentDescribed(DepartmentDescribed {
            id: dep(1),
            description: Some(n("Licencias y obras")),
        });
        given::<Directory>(vec![dep_added(1, "Urbanismo"), described.clone()])
            .when(&C::DescribeDepartment {
                id: dep(1),
                description: None,
            })
            .then(vec![E::DepartmentDescribed(DepartmentDescribed {
                id: dep(1),
                description: None,
            })]);
        let state = Directory::fold(&[dep_added(1, "Urbanismo"), described]);
        assert_eq!(
            state.department(dep(1)).unwrap().description,
            Some(n("Licencias y obras"))
        );
        assert_eq!(state.department(dep(1)).unwrap().name, n("Urbanismo"));
    }

    #[test]
    fn describing_a_department_as_it_already_is_is_a_no_op() {
        given::<Directory>(vec![dep_added(1, "Urbanismo")])
            .when(&C::DescribeDepartment {
                id: dep(1),
                description: None,
            })
            .then(vec![]);
    }

    #[test]
    fn refuses_describing_an_unknown_or_removed_department_or_at_too_much_length() {
        given::<Directory>(vec![])
            .when(&C::DescribeDepartment {
                id: dep(1),
                description: Some(n("Cultura")),
            })
            .then_error(|e| *e == DirectoryError::UnknownDepartment { id: dep(1) });
        given::<Directory>(vec![
            dep_added(1, "Urbanismo"),
            E::DepartmentRemoved(DepartmentRemoved {
                id: dep(1),
                name: n("Urbanismo"),
            }),
        ])
        .when(&C::DescribeDepartment {
            id: dep(1),
            description: None,
        })
        .then_error(|e| *e == DirectoryError::UnknownDepartment { id: dep(1) });
        given::<Directory>(vec![dep_added(1, "Urbanismo")])
            .when(&C::DescribeDepartment {
                id: dep(1),
                description: Some(n(&"x".repeat(DESCRIPTION_MAX + 1))),
            })
            .then_error(too_long("description"));
    }

    // --- RemoveDepartment

    #[test]
    fn removes_a_department_and_a_repeat_is_a_no_op() {
        let removed = E::DepartmentRemoved(DepartmentRemoved {
            id: dep(1),
            name: n("Urbanismo"),
        });
        given::<Directory>(vec![dep_added(1, "Urbanismo")])
            .when(&C::RemoveDepartment { id: dep(1) })
            .then(vec![removed.clone()]);
        given::<Directory>(vec![dep_added(1, "Urbanismo"), removed])
            .when(&C::RemoveDepartment { id: dep(1) })
            .then(vec![]);
    }

    #[test]
    fn refuses_removing_a_department_with_officials() {
        given::<Directory>(vec![
            dep_added(1, "Urbanismo"),
            off_added(1, Some(1), true),
            off_added(2, Some(1), false),
        ])
        .when(&C::RemoveDepartment { id: dep(1) })
        .then_error(|e| {
            *e == DirectoryError::DepartmentHasOfficials {
                id: dep(1),
                officials: 2,
            }
        });
    }

    #[test]
    fn a_department_whose_officials_left_can_be_removed() {
        given::<Directory>(vec![
            dep_added(1, "Urbanismo"),
            off_added(1, Some(1), true),
            E::OfficialRemoved(OfficialRemoved {
                id: off(1),
                name: n("Official 1"),
                department: Some(dep(1)),
            }),
        ])
        .when(&C::RemoveDepartment { id: dep(1) })
        .then(vec![E::DepartmentRemoved(DepartmentRemoved {
            id: dep(1),
            name: n("Urbanismo"),
        })]);
    }

    #[test]
    fn refuses_removing_an_unknown_department() {
        given::<Directory>(vec![])
            .when(&C::RemoveDepartment { id: dep(7) })
            .then_error(|e| *e == DirectoryError::UnknownDepartment { id: dep(7) });
    }

    // --- AddOfficial

    #[test]
    fn adds_an_official_with_or_without_a_department() {
        given::<Directory>(vec![dep_added(1, "Urbanismo")])
            .when(&add_official(1, Some(1)))
            .then(vec![off_added(1, Some(1), true)]);
        given::<Directory>(vec![])
            .when(&add_official(1, None))
            .then(vec![off_added(1, None, true)]);
    }

    #[test]
    fn refuses_an_official_of_an_unknown_or_removed_department() {
        given::<Directory>(vec![])
            .when(&add_official(1, Some(3)))
            .then_error(|e| *e == DirectoryError::UnknownDepartment { id: dep(3) });
        given::<Directory>(vec![
            dep_added(3, "Urbanismo"),
            E::DepartmentRemoved(DepartmentRemoved {
                id: dep(3),
                name: n("Urbanismo"),
            }),
        ])
        .when(&add_official(1, Some(3)))
        .then_error(|e| *e == DirectoryError::UnknownDepartment { id: dep(3) });
    }

    #[test]
    fn refuses_an_official_id_in_use_even_after_removal() {
        given::<Directory>(vec![off_added(1, None, true)])
            .when(&add_official(1, None))
            .then_error(|e| *e == DirectoryError::IdInUse { id: off(1).0 });
        given::<Directory>(vec![
            off_added(1, None, true),
            E::OfficialRemoved(OfficialRemoved {
                id: off(1),
                name: n("Official 1"),
                department: None,
            }),
        ])
        .when(&add_official(1, None))
        .then_error(|e| *e == DirectoryError::IdInUse { id: off(1).0 });
    }

    #[test]
    fn refuses_the_2001st_official() {
        let history = (0..2000).map(|i| off_added(i, None, true)).collect();
        given::<Directory>(history)
            .when(&add_official(5000, None))
            .then_error(|e| {
                *e == DirectoryError::TooMany {
                    what: "officials",
                    max: 2000,
                }
            });
    }

    #[test]
    fn refuses_an_over_long_official_name_or_role() {
        given::<Directory>(vec![])
            .when(&C::AddOfficial {
                id: off(1),
                name: n(&"x".repeat(121)),
                role: n("Alcaldesa"),
                department: None,
                accepts_public_questions: true,
            })
            .then_error(too_long("name"));
        given::<Directory>(vec![])
            .when(&C::AddOfficial {
                id: off(1),
                name: n("Ana"),
                role: n(&"x".repeat(121)),
                department: None,
                accepts_public_questions: true,
            })
            .then_error(too_long("role"));
    }

    // --- UpdateOfficial

    #[test]
    fn updates_an_official_with_the_whole_record() {
        given::<Directory>(vec![
            dep_added(1, "Urbanismo"),
            dep_added(2, "Alcaldía"),
            off_added(1, Some(1), true),
        ])
        .when(&update_official(1, "Ana Pérez", Some(2)))
        .then(vec![E::OfficialUpdated(OfficialUpdated {
            id: off(1),
            name: n("Ana Pérez"),
            role: n("Alcaldesa"),
            department: Some(dep(2)),
            accepts_public_questions: false,
        })]);
    }

    #[test]
    fn updating_an_official_with_what_is_recorded_is_a_no_op() {
        given::<Directory>(vec![off_added(1, None, true)])
            .when(&C::UpdateOfficial {
                id: off(1),
                name: n("Official 1"),
                role: n("Concejala de Urbanismo"),
                department: None,
                accepts_public_questions: true,
            })
            .then(vec![]);
    }

    #[test]
    fn refuses_updating_an_unknown_official() {
        given::<Directory>(vec![])
            .when(&update_official(4, "Ana", None))
            .then_error(|e| *e == DirectoryError::UnknownOfficial { id: off(4) });
    }

    #[test]
    fn refuses_moving_an_official_to_an_unknown_department() {
        given::<Directory>(vec![off_added(1, None, true)])
            .when(&update_official(1, "Ana", Some(9)))
            .then_error(|e| *e == DirectoryError::UnknownDepartment { id: dep(9) });
    }

    #[test]
    fn refuses_an_over_long_updated_official() {
        given::<Directory>(vec![off_added(1, None, true)])
            .when(&update_official(1, &"x".repeat(121), None))
            .then_error(too_long("name"));
    }

    // --- RemoveOfficial

    #[test]
    fn removes_an_official_and_a_repeat_is_a_no_op() {
        let removed = E::OfficialRemoved(OfficialRemoved {
            id: off(1),
            name: n("Official 1"),
            department: Some(dep(1)),
        });
        given::<Directory>(vec![dep_added(1, "Urbanismo"), off_added(1, Some(1), true)])
            .when(&C::RemoveOfficial { id: off(1) })
            .then(vec![removed.clone()]);
        given::<Directory>(vec![
            dep_added(1, "Urbanismo"),
            off_added(1, Some(1), true),
            removed,
        ])
        .when(&C::RemoveOfficial { id: off(1) })
        .then(vec![]);
    }

    #[test]
    fn refuses_removing_an_unknown_official() {
        given::<Directory>(vec![])
            .when(&C::RemoveOfficial { id: off(1) })
            .then_error(|e| *e == DirectoryError::UnknownOfficial { id: off(1) });
    }

    // --- AddTopic

    #[test]
    fn adds_a_topic() {
        given::<Directory>(vec![])
            .when(&C::AddTopic {
                id: top(1),
                name: n("Obras"),
                description: Some(n("Cortes de calles y obras")),
            })
            .then(vec![E::TopicAdded(TopicAdded {
                id: top(1),
                name: n("Obras"),
                description: Some(n("Cortes de calles y obras")),
            })]);
    }

    #[test]
    fn topic_and_department_names_are_separate() {
        given::<Directory>(vec![dep_added(1, "Cultura")])
            .when(&C::AddTopic {
                id: top(1),
                name: n("Cultura"),
                description: None,
            })
            .then(vec![top_added(1, "Cultura")]);
    }

    #[test]
    fn refuses_a_duplicate_topic_name() {
        given::<Directory>(vec![top_added(1, "Agenda cultural")])
            .when(&C::AddTopic {
                id: top(2),
                name: n("agenda CULTURAL"),
                description: None,
            })
            .then_error(|e| matches!(e, DirectoryError::DuplicateName { what: "topic", .. }));
    }

    #[test]
    fn refuses_a_topic_id_in_use() {
        given::<Directory>(vec![top_added(1, "Obras")])
            .when(&C::AddTopic {
                id: top(1),
                name: n("Impuestos"),
                description: None,
            })
            .then_error(|e| *e == DirectoryError::IdInUse { id: top(1).0 });
    }

    #[test]
    fn refuses_the_501st_topic() {
        let history = (0..500).map(|i| top_added(i, &format!("T{i}"))).collect();
        given::<Directory>(history)
            .when(&C::AddTopic {
                id: top(999),
                name: n("One too many"),
                description: None,
            })
            .then_error(|e| {
                *e == DirectoryError::TooMany {
                    what: "topics",
                    max: 500,
                }
            });
    }

    #[test]
    fn refuses_an_over_long_topic_name_or_description() {
        given::<Directory>(vec![])
            .when(&C::AddTopic {
                id: top(1),
                name: n(&"x".repeat(81)),
                description: None,
            })
            .then_error(too_long("name"));
        given::<Directory>(vec![])
            .when(&C::AddTopic {
                id: top(1),
                name: n("Obras"),
                description: Some(n(&"x".repeat(1001))),
            })
            .then_error(too_long("description"));
    }

    // --- RenameTopic

    #[test]
    fn renames_a_topic_and_the_same_name_is_a_no_op() {
        given::<Directory>(vec![top_added(1, "Obras")])
            .when(&C::RenameTopic {
                id: top(1),
                name: n("Obras y cortes"),
            })
            .then(vec![E::TopicRenamed(TopicRenamed {
                id: top(1),
                name: n("Obras y cortes"),
                previous_name: n("Obras"),
            })]);
        given::<Directory>(vec![top_added(1, "Obras")])
            .when(&C::RenameTopic {
                id: top(1),
                name: n("Obras"),
            })
            .then(vec![]);
    }

    #[test]
    fn refuses_renaming_a_topic_to_a_taken_name() {
        given::<Directory>(vec![top_added(1, "Obras"), top_added(2, "Impuestos")])
            .when(&C::RenameTopic {
                id: top(2),
                name: n("OBRAS"),
            })
            .then_error(|e| matches!(e, DirectoryError::DuplicateName { what: "topic", .. }));
    }

    #[test]
    fn refuses_renaming_an_unknown_topic() {
        given::<Directory>(vec![])
            .when(&C::RenameTopic {
                id: top(1),
                name: n("Obras"),
            })
            .then_error(|e| *e == DirectoryError::UnknownTopic { id: top(1) });
    }

    #[test]
    fn refuses_an_over_long_new_topic_name() {
        given::<Directory>(vec![top_added(1, "Obras")])
            .when(&C::RenameTopic {
                id: top(1),
                name: n(&"x".repeat(81)),
            })
            .then_error(too_long("name"));
    }

    // --- DescribeTopic

    #[test]
    fn describes_a_topic_and_refuses_an_unknown_one() {
        given::<Directory>(vec![top_added(1, "Obras")])
            .when(&C::DescribeTopic {
                id: top(1),
                description: Some(n("Calles cortadas")),
            })
            .then(vec![E::TopicDescribed(TopicDescribed {
                id: top(1),
                description: Some(n("Calles cortadas")),
            })]);
        given::<Directory>(vec![top_added(1, "Obras")])
            .when(&C::DescribeTopic {
                id: top(1),
                description: None,
            })
            .then(vec![]);
        given::<Directory>(vec![])
            .when(&C::DescribeTopic {
                id: top(1),
                description: None,
            })
            .then_error(|e| *e == DirectoryError::UnknownTopic { id: top(1) });
        given::<Directory>(vec![top_added(1, "Obras")])
            .when(&C::DescribeTopic {
                id: top(1),
                description: Some(n(&"x".repeat(DESCRIPTION_MAX + 1))),
            })
            .then_error(too_long("description"));
        let state = Directory::fold(&[
            top_added(1, "Obras"),
            E::TopicDescribed(TopicDescribed {
                id: top(1),
                description: Some(n("Calles cortadas")),
            }),
        ]);
        assert_eq!(
            state.topic(top(1)).unwrap().description,
            Some(n("Calles cortadas"))
        );
    }

    // --- RemoveTopic

    #[test]
    fn removes_a_topic_and_a_repeat_is_a_no_op() {
        let removed = E::TopicRemoved(TopicRemoved {
            id: top(1),
            name: n("Obras"),
        });
        given::<Directory>(vec![top_added(1, "Obras")])
            .when(&C::RemoveTopic { id: top(1) })
            .then(vec![removed.clone()]);
        given::<Directory>(vec![top_added(1, "Obras"), removed])
            .when(&C::RemoveTopic { id: top(1) })
            .then(vec![]);
    }

    #[test]
    fn refuses_removing_an_unknown_topic() {
        given::<Directory>(vec![])
            .when(&C::RemoveTopic { id: top(1) })
            .then_error(|e| *e == DirectoryError::UnknownTopic { id: top(1) });
    }

    // --- State queries

    #[test]
    fn the_state_answers_who_accepts_public_questions() {
        let state = Directory::fold(&[
            dep_added(1, "Urbanismo"),
            top_added(1, "Obras"),
            off_added(1, Some(1), true),
            off_added(2, Some(1), false),
            off_added(3, None, true),
            E::OfficialRemoved(OfficialRemoved {
                id: off(3),
                name: n("Official 3"),
                department: None,
            }),
        ]);
        assert_eq!(state.official(off(1)).unwrap().department, Some(dep(1)));
        assert_eq!(state.accepts_questions_for_official(off(1)), Ok(()));
        assert_eq!(
            state.accepts_questions_for_official(off(2)),
            Err(DirectoryError::OfficialNotAcceptingQuestions { id: off(2) })
        );
        assert_eq!(
            state.accepts_questions_for_official(off(3)),
            Err(DirectoryError::UnknownOfficial { id: off(3) })
        );
        assert!(state.official(off(3)).is_none());
        assert_eq!(state.department(dep(1)).unwrap().name, n("Urbanismo"));
        assert_eq!(state.topic(top(1)).unwrap().name, n("Obras"));
        assert_eq!(state.officials_of(dep(1)).count(), 2);
        assert_eq!(state.departments().count(), 1);
        assert_eq!(state.officials().count(), 2);
        assert_eq!(state.topics().count(), 1);
    }

    #[test]
    fn updates_and_renames_show_in_the_state() {
        let state = Directory::fold(&[
            dep_added(1, "Urbanismo"),
            off_added(1, Some(1), true),
            E::DepartmentRenamed(DepartmentRenamed {
                id: dep(1),
                name: n("Vivienda"),
                previous_name: n("Urbanismo"),
            }),
            E::OfficialUpdated(OfficialUpdated {
                id: off(1),
                name: n("Ana"),
                role: n("Alcaldesa"),
                department: None,
                accepts_public_questions: false,
            }),
            top_added(1, "Obras"),
            E::TopicRenamed(TopicRenamed {
                id: top(1),
                name: n("Cortes"),
                previous_name: n("Obras"),
            }),
        ]);
        assert_eq!(state.department(dep(1)).unwrap().name, n("Vivienda"));
        assert_eq!(state.official(off(1)).unwrap().role, n("Alcaldesa"));
        assert_eq!(state.topic(top(1)).unwrap().name, n("Cortes"));
        assert_eq!(state.officials_of(dep(1)).count(), 0);
    }

    // --- Storage

    #[test]
    fn every_event_survives_storage() {
        let events = vec![
            E::DepartmentAdded(DepartmentAdded {
                id: dep(1),
                name: n("Urbanismo"),
                description: Some(n("Licencias")),
            }),
            E::DepartmentRenamed(DepartmentRenamed {
                id: dep(1),
                name: n("Vivienda"),
                previous_name: n("Urbanismo"),
            }),
            E::DepartmentDescribed(DepartmentDescribed {
                id: dep(1),
                description: None,
            }),
            E::DepartmentRemoved(DepartmentRemoved {
                id: dep(1),
                name: n("Vivienda"),
            }),
            off_added(1, Some(1), true),
            E::OfficialUpdated(OfficialUpdated {
                id: off(1),
                name: n("Ana"),
                role: n("Alcaldesa"),
                department: None,
                accepts_public_questions: false,
            }),
            E::OfficialRemoved(OfficialRemoved {
                id: off(1),
                name: n("Ana"),
                department: None,
            }),
            E::TopicAdded(TopicAdded {
                id: top(1),
                name: n("Obras"),
                description: Some(n("Cortes de calles")),
            }),
            E::TopicRenamed(TopicRenamed {
                id: top(1),
                name: n("Cortes"),
                previous_name: n("Obras"),
            }),
            E::TopicDescribed(TopicDescribed {
                id: top(1),
                description: Some(n("Calles cortadas por obras")),
            }),
            E::TopicRemoved(TopicRemoved {
                id: top(1),
                name: n("Cortes"),
            }),
        ];
        let mut types = BTreeSet::new();
        for event in events {
            let t = event.event_type();
            assert!(t.starts_with("directory."), "{t}");
            types.insert(t);
            let back =
                DirectoryEvent::from_stored(t, event.schema_version(), &event.to_data()).unwrap();
            assert_eq!(back, event);
        }
        assert_eq!(types.len(), 11, "every variant has its own type name");
    }

    #[test]
    fn refuses_unknown_stored_events() {
        let data = serde_json::json!({});
        let e = DirectoryEvent::from_stored("directory.exploded", 1, &data).unwrap_err();
        assert_eq!(e.event_type, "directory.exploded");
        assert!(DirectoryEvent::from_stored(TOPIC_REMOVED, 1, &data).is_err());
        assert!(DirectoryEvent::from_stored(TOPIC_REMOVED, 2, &data).is_err());
    }

    #[test]
    fn error_messages_are_lowercase_without_a_trailing_period() {
        for e in [
            DirectoryError::Invalid(InvalidValue::new("name", "must not be empty")),
            DirectoryError::DuplicateName {
                what: "topic",
                name: n("Obras"),
            },
            DirectoryError::UnknownDepartment { id: dep(1) },
            DirectoryError::UnknownOfficial { id: off(1) },
            DirectoryError::UnknownTopic { id: top(1) },
            DirectoryError::IdInUse { id: dep(1).0 },
            DirectoryError::DepartmentHasOfficials {
                id: dep(1),
                officials: 2,
            },
            DirectoryError::TooMany {
                what: "topics",
                max: 500,
            },
            DirectoryError::OfficialNotAcceptingQuestions { id: off(1) },
        ] {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }
}

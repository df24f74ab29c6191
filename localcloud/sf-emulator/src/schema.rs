//! The emulated org's object model: the standard objects, their fields and relationships.
//!
//! Field names are stored in their canonical (describe) case; every lookup by name is
//! case-insensitive, as in Salesforce.

use serde_json::{Map, Value, json};

/// A field's Salesforce type, as `describe` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Id,
    String,
    TextArea,
    Phone,
    Email,
    Url,
    Picklist,
    Reference,
    Boolean,
    Date,
    DateTime,
    Double,
    Currency,
    Int,
}

impl FieldType {
    pub fn describe_name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::String => "string",
            Self::TextArea => "textarea",
            Self::Phone => "phone",
            Self::Email => "email",
            Self::Url => "url",
            Self::Picklist => "picklist",
            Self::Reference => "reference",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::DateTime => "datetime",
            Self::Double => "double",
            Self::Currency => "currency",
            Self::Int => "int",
        }
    }

    /// Whether aggregate functions take fields of this type (describe's `aggregatable`).
    pub fn aggregatable(self) -> bool {
        !matches!(self, Self::TextArea | Self::Boolean)
    }

    /// Whether GROUP BY takes fields of this type (describe's `groupable`).
    pub fn groupable(self) -> bool {
        !matches!(
            self,
            Self::TextArea | Self::Double | Self::Currency | Self::DateTime
        )
    }

    /// Whether SOSL's `ALL FIELDS`/`NAME FIELDS` text search looks at this field.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            Self::String | Self::TextArea | Self::Phone | Self::Email | Self::Url | Self::Picklist
        )
    }
}

/// One field of an object.
#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: &'static str,
    pub label: &'static str,
    pub field_type: FieldType,
    pub length: u32,
    /// Must be given on create (not nillable, no default, createable).
    pub required: bool,
    pub createable: bool,
    pub updateable: bool,
    /// Values of a picklist; `restricted` makes anything else an error.
    pub picklist: &'static [&'static str],
    pub restricted: bool,
    pub default: Option<&'static str>,
    /// Object types a reference may point at (several for polymorphic fields).
    pub reference_to: &'static [&'static str],
    /// The relationship name used in SOQL paths (`Account` for `AccountId`).
    pub relationship_name: Option<&'static str>,
    /// Part of the object's name for SOSL `NAME FIELDS`.
    pub name_field: bool,
}

impl FieldDef {
    const fn new(name: &'static str, label: &'static str, field_type: FieldType) -> Self {
        let length = match field_type {
            FieldType::Id | FieldType::Reference => 18,
            FieldType::TextArea => 32000,
            FieldType::Phone | FieldType::Picklist => 40,
            FieldType::Email => 80,
            FieldType::Url => 255,
            FieldType::String => 255,
            _ => 0,
        };
        Self {
            name,
            label,
            field_type,
            length,
            required: false,
            createable: true,
            updateable: true,
            picklist: &[],
            restricted: false,
            default: None,
            reference_to: &[],
            relationship_name: None,
            name_field: false,
        }
    }

    const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// System-maintained: not createable, not updateable.
    const fn system(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }

    const fn name_field(mut self) -> Self {
        self.name_field = true;
        self
    }

    const fn length(mut self, length: u32) -> Self {
        self.length = length;
        self
    }

    const fn picklist(
        mut self,
        values: &'static [&'static str],
        restricted: bool,
        default: Option<&'static str>,
    ) -> Self {
        self.picklist = values;
        self.restricted = restricted;
        self.default = default;
        self
    }

    const fn reference(
        mut self,
        to: &'static [&'static str],
        relationship_name: &'static str,
    ) -> Self {
        self.reference_to = to;
        self.relationship_name = Some(relationship_name);
        self
    }

    pub fn nillable(&self) -> bool {
        !self.required
            && self.field_type != FieldType::Boolean
            && !AUDIT_FIELDS.contains(&self.name)
    }

    /// The objects `referenceTo` names in `describe`: the owner may be a user or a queue
    /// (`Group`), as on a real org, whatever the emulator resolves `Owner.` paths to.
    fn described_reference_to(&self) -> &'static [&'static str] {
        if self.name == "OwnerId" {
            &["Group", "User"]
        } else {
            self.reference_to
        }
    }

    /// The `describe` entry for this field.
    pub fn describe(&self) -> Value {
        let picklist_values: Vec<Value> = self
            .picklist
            .iter()
            .map(|value| {
                json!({"active": true, "defaultValue": self.default == Some(*value),
                       "label": value, "validFor": null, "value": value})
            })
            .collect();
        let field_type = self.field_type;
        let text = matches!(
            field_type,
            FieldType::String
                | FieldType::TextArea
                | FieldType::Phone
                | FieldType::Email
                | FieldType::Url
                | FieldType::Picklist
        );
        let reference_to = self.described_reference_to();
        let (precision, scale, digits) = match field_type {
            FieldType::Double | FieldType::Currency => (18, 2, 0),
            FieldType::Int => (0, 0, 9),
            _ => (0, 0, 0),
        };
        // A picklist's default is its value; a checkbox's is `false`; nothing else has one.
        let default_value = match (self.default, field_type) {
            (Some(value), _) => json!(value),
            (None, FieldType::Boolean) => json!(false),
            _ => Value::Null,
        };
        let extra_type_info = match (field_type, self.name) {
            (FieldType::TextArea, _) => json!("plaintextarea"),
            (_, "Name" | "FirstName" | "LastName") => json!("personname"),
            _ => Value::Null,
        };
        // Every key of a field's describe, as the REST API sends them (57).
        let mut field = Map::new();
        let mut put = |key: &str, value: Value| {
            field.insert(key.to_string(), value);
        };
        put("aggregatable", json!(field_type.aggregatable()));
        put("aiPredictionField", json!(false));
        put("autoNumber", json!(self.name == "CaseNumber"));
        put(
            "byteLength",
            json!(match field_type {
                FieldType::Id | FieldType::Reference => 18,
                _ if text => self.length * 3,
                _ => 0,
            }),
        );
        put("calculated", json!(false));
        put("calculatedFormula", Value::Null);
        put("cascadeDelete", json!(false));
        put("caseSensitive", json!(false));
        put("compoundFieldName", Value::Null);
        put("controllerName", Value::Null);
        put("createable", json!(self.createable));
        put("custom", json!(false));
        put("defaultValue", default_value);
        put("defaultValueFormula", Value::Null);
        put(
            "defaultedOnCreate",
            json!(self.default.is_some() || !self.createable || field_type == FieldType::Boolean),
        );
        put("dependentPicklist", json!(false));
        put("deprecatedAndHidden", json!(false));
        put("digits", json!(digits));
        put("displayLocationInDecimal", json!(false));
        put("encrypted", json!(false));
        put("externalId", json!(false));
        put("extraTypeInfo", extra_type_info);
        put("filterable", json!(field_type != FieldType::TextArea));
        put("filteredLookupInfo", Value::Null);
        put("formulaTreatNullNumberAsZero", json!(false));
        put("groupable", json!(field_type.groupable()));
        put("highScaleNumber", json!(false));
        put("htmlFormatted", json!(false));
        put(
            "idLookup",
            json!(self.name == "Id" || field_type == FieldType::Email),
        );
        put("inlineHelpText", Value::Null);
        put("label", json!(self.label));
        put("length", json!(if text { self.length } else { 0 }));
        put("mask", Value::Null);
        put("maskType", Value::Null);
        put("name", json!(self.name));
        put(
            "nameField",
            json!(self.name_field && matches!(self.name, "Name" | "Subject" | "CaseNumber")),
        );
        put("namePointing", json!(reference_to.len() > 1));
        put("nillable", json!(self.nillable()));
        put("permissionable", json!(self.nillable() && self.updateable));
        put("picklistValues", Value::Array(picklist_values));
        put("polymorphicForeignKey", json!(reference_to.len() > 1));
        put("precision", json!(precision));
        put("queryByDistance", json!(false));
        put("referenceTargetField", Value::Null);
        put("referenceTo", json!(reference_to));
        put("relationshipName", json!(self.relationship_name));
        put("relationshipOrder", Value::Null);
        put("restrictedDelete", json!(false));
        put("restrictedPicklist", json!(self.restricted));
        put("scale", json!(scale));
        put(
            "searchPrefilterable",
            json!(field_type == FieldType::Reference),
        );
        put("soapType", json!(soap_type(field_type)));
        put("sortable", json!(field_type != FieldType::TextArea));
        put("type", json!(field_type.describe_name()));
        put("unique", json!(false));
        put("updateable", json!(self.updateable));
        put("writeRequiresMasterRead", json!(false));
        Value::Object(field)
    }
}

fn soap_type(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Id | FieldType::Reference => "tns:ID",
        FieldType::Boolean => "xsd:boolean",
        FieldType::Date => "xsd:date",
        FieldType::DateTime => "xsd:dateTime",
        FieldType::Double | FieldType::Currency => "xsd:double",
        FieldType::Int => "xsd:int",
        _ => "xsd:string",
    }
}

/// The audit fields every object has: never null, never written by a caller.
const AUDIT_FIELDS: &[&str] = &[
    "Id",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
];

/// One sObject type.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub name: &'static str,
    pub label: &'static str,
    pub label_plural: &'static str,
    pub key_prefix: &'static str,
    pub fields: Vec<FieldDef>,
    pub createable: bool,
    pub searchable: bool,
}

impl ObjectDef {
    /// Finds a field by name, ignoring case.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name))
    }

    /// Finds a reference field by its relationship name (`Account` → `AccountId`).
    pub fn relationship(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|field| {
            field
                .relationship_name
                .is_some_and(|relationship| relationship.eq_ignore_ascii_case(name))
        })
    }

    pub fn describe_global_entry(&self, api_version: &str) -> Value {
        let base = format!("/services/data/v{api_version}/sobjects/{}", self.name);
        let feed = matches!(self.name, "Account" | "Contact" | "Case" | "Lead");
        json!({
            "activateable": false, "associateEntityType": null, "associateParentEntity": null,
            "createable": self.createable, "custom": false, "customSetting": false,
            "deepCloneable": false, "deletable": self.createable, "deprecatedAndHidden": false,
            "feedEnabled": feed, "hasSubtypes": false, "isInterface": false, "isSubtype": false,
            "keyPrefix": self.key_prefix, "label": self.label, "labelPlural": self.label_plural,
            "layoutable": true, "mergeable": matches!(self.name, "Account" | "Contact" | "Lead"),
            "mruEnabled": true, "name": self.name, "queryable": true, "replicateable": true,
            "retrieveable": true, "searchable": self.searchable, "triggerable": true,
            "undeletable": self.createable, "updateable": self.createable,
            "urls": {
                "sobject": base,
                "describe": format!("{base}/describe"),
                "rowTemplate": format!("{base}/{{ID}}"),
            },
        })
    }

    pub fn describe(&self, api_version: &str, schema: &Schema) -> Value {
        let mut describe = self.describe_global_entry(api_version);
        let fields: Vec<Value> = self.fields.iter().map(FieldDef::describe).collect();
        describe["fields"] = Value::Array(fields);
        // Child relationships: every reference field in another object that points here.
        let children: Vec<Value> = schema
            .objects
            .iter()
            .flat_map(|child| {
                child
                    .fields
                    .iter()
                    .filter(|field| field.reference_to.contains(&self.name))
                    .map(move |field| {
                        json!({"cascadeDelete": false, "childSObject": child.name,
                               "deprecatedAndHidden": false, "field": field.name,
                               "junctionIdListNames": [], "junctionReferenceTo": [],
                               "relationshipName": child_relationship_name(child.name, field.name),
                               "restrictedDelete": false})
                    })
            })
            .collect();
        describe["childRelationships"] = Value::Array(children);
        // The keys only a full describe has (global describe entries lack them).
        let base = format!("/services/data/v{api_version}/sobjects/{}", self.name);
        const MASTER: &str = "012000000000000AAA";
        let more = json!({
            "actionOverrides": [],
            "compactLayoutable": true,
            "defaultImplementation": null,
            "extendedBy": null,
            "extendsInterfaces": null,
            "implementedBy": null,
            "implementsInterfaces": null,
            "listviewable": null,
            "lookupLayoutable": null,
            "namedLayoutInfos": [],
            "networkScopeFieldName": null,
            "recordTypeInfos": [{
                "active": true, "available": true, "defaultRecordTypeMapping": true,
                "developerName": "Master", "master": true, "name": "Master",
                "recordTypeId": MASTER,
                "urls": {"layout": format!("{base}/describe/layouts/{MASTER}")},
            }],
            "searchLayoutable": true,
            "sobjectDescribeOption": "FULL",
            "supportedScopes": [
                {"label": "All", "name": "everything"},
                {"label": "My", "name": "mine"},
            ],
            "urls": {
                "compactLayouts": format!("{base}/describe/compactLayouts"),
                "rowTemplate": format!("{base}/{{ID}}"),
                "approvalLayouts": format!("{base}/describe/approvalLayouts"),
                "uiDetailTemplate": format!("https://emulator.my.salesforce.com/{{ID}}"),
                "uiEditTemplate": format!("https://emulator.my.salesforce.com/{{ID}}/e"),
                "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
                "listviews": format!("{base}/listviews"),
                "describe": format!("{base}/describe"),
                "uiNewRecord": format!("https://emulator.my.salesforce.com/{}/e", self.key_prefix),
                "quickActions": format!("{base}/quickActions"),
                "layouts": format!("{base}/describe/layouts"),
                "sobject": base,
            },
        });
        if let (Value::Object(describe), Value::Object(more)) = (&mut describe, more) {
            describe.extend(more);
        }
        describe
    }
}

fn child_relationship_name(child: &str, field: &str) -> Option<&'static str> {
    match (child, field) {
        ("Contact", "AccountId") => Some("Contacts"),
        ("Case", "AccountId") => Some("Cases"),
        ("Case", "ContactId") => Some("Cases"),
        ("Task", "WhoId") | ("Task", "WhatId") => Some("Tasks"),
        _ => None,
    }
}

/// The org's object model.
#[derive(Debug, Clone)]
pub struct Schema {
    pub objects: Vec<ObjectDef>,
}

/// A child relationship of a parent object: the child object and its reference field to the
/// parent (`Cases` of Contact: Case through `ContactId`).
#[derive(Debug, Clone, Copy)]
pub struct ChildRelationship<'s> {
    pub name: &'static str,
    pub child: &'s ObjectDef,
    pub field: &'static str,
}

impl Schema {
    /// The child relationship `name` (ignoring case) of `parent`, as its describe lists it.
    pub fn child_relationship(
        &self,
        parent: &ObjectDef,
        name: &str,
    ) -> Option<ChildRelationship<'_>> {
        self.objects.iter().find_map(|child| {
            child.fields.iter().find_map(|field| {
                let relationship = child_relationship_name(child.name, field.name)?;
                (field.reference_to.contains(&parent.name)
                    && relationship.eq_ignore_ascii_case(name))
                .then_some(ChildRelationship {
                    name: relationship,
                    child,
                    field: field.name,
                })
            })
        })
    }

    /// Finds an object by name, ignoring case.
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects
            .iter()
            .find(|object| object.name.eq_ignore_ascii_case(name))
    }

    /// The object an ID belongs to, from its key prefix.
    pub fn object_for_id(&self, id: &str) -> Option<&ObjectDef> {
        let prefix = id.get(..3)?;
        self.objects
            .iter()
            .find(|object| object.key_prefix == prefix)
    }

    /// The standard objects this emulator serves.
    pub fn standard() -> Self {
        use FieldType as T;
        let audit = || {
            vec![
                FieldDef::new("Id", "Record ID", T::Id).system(),
                FieldDef::new("IsDeleted", "Deleted", T::Boolean).system(),
                FieldDef::new("CreatedDate", "Created Date", T::DateTime).system(),
                FieldDef::new("CreatedById", "Created By ID", T::Reference)
                    .reference(&["User"], "CreatedBy")
                    .system(),
                FieldDef::new("LastModifiedDate", "Last Modified Date", T::DateTime).system(),
                FieldDef::new("LastModifiedById", "Last Modified By ID", T::Reference)
                    .reference(&["User"], "LastModifiedBy")
                    .system(),
                FieldDef::new("SystemModstamp", "System Modstamp", T::DateTime).system(),
            ]
        };
        let owned = || {
            let mut fields = audit();
            fields.push(
                FieldDef::new("OwnerId", "Owner ID", T::Reference).reference(&["User"], "Owner"),
            );
            fields
        };
        let with = |mut base: Vec<FieldDef>, extra: Vec<FieldDef>| {
            base.extend(extra);
            base
        };

        let account = ObjectDef {
            name: "Account",
            label: "Account",
            label_plural: "Accounts",
            key_prefix: "001",
            createable: true,
            searchable: true,
            fields: with(
                owned(),
                vec![
                    FieldDef::new("Name", "Account Name", T::String)
                        .required()
                        .name_field(),
                    FieldDef::new("AccountNumber", "Account Number", T::String).length(40),
                    FieldDef::new("Phone", "Account Phone", T::Phone),
                    FieldDef::new("Fax", "Account Fax", T::Phone),
                    FieldDef::new("Website", "Website", T::Url),
                    FieldDef::new("Industry", "Industry", T::Picklist).picklist(
                        &[
                            "Agriculture",
                            "Banking",
                            "Education",
                            "Retail",
                            "Technology",
                        ],
                        false,
                        None,
                    ),
                    FieldDef::new("Type", "Account Type", T::Picklist).picklist(
                        &[
                            "Prospect",
                            "Customer - Direct",
                            "Customer - Channel",
                            "Other",
                        ],
                        false,
                        None,
                    ),
                    FieldDef::new("BillingCity", "Billing City", T::String).length(40),
                    FieldDef::new("BillingCountry", "Billing Country", T::String).length(80),
                    FieldDef::new("NumberOfEmployees", "Employees", T::Int),
                    FieldDef::new("AnnualRevenue", "Annual Revenue", T::Currency),
                    FieldDef::new("Description", "Account Description", T::TextArea),
                ],
            ),
        };
        let contact = ObjectDef {
            name: "Contact",
            label: "Contact",
            label_plural: "Contacts",
            key_prefix: "003",
            createable: true,
            searchable: true,
            fields: with(
                owned(),
                vec![
                    FieldDef::new("AccountId", "Account ID", T::Reference)
                        .reference(&["Account"], "Account"),
                    FieldDef::new("FirstName", "First Name", T::String)
                        .length(40)
                        .name_field(),
                    FieldDef::new("LastName", "Last Name", T::String)
                        .length(80)
                        .required()
                        .name_field(),
                    FieldDef::new("Name", "Full Name", T::String)
                        .length(121)
                        .system()
                        .name_field(),
                    FieldDef::new("Salutation", "Salutation", T::Picklist).picklist(
                        &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."],
                        false,
                        None,
                    ),
                    FieldDef::new("Title", "Title", T::String).length(128),
                    FieldDef::new("Email", "Email", T::Email),
                    FieldDef::new("Phone", "Business Phone", T::Phone),
                    FieldDef::new("MobilePhone", "Mobile Phone", T::Phone),
                    FieldDef::new("HomePhone", "Home Phone", T::Phone),
                    FieldDef::new("OtherPhone", "Other Phone", T::Phone),
                    FieldDef::new("AssistantPhone", "Asst. Phone", T::Phone),
                    FieldDef::new("Fax", "Business Fax", T::Phone),
                    FieldDef::new("MailingCity", "Mailing City", T::String).length(40),
                    FieldDef::new("MailingCountry", "Mailing Country", T::String).length(80),
                    FieldDef::new("Birthdate", "Birthdate", T::Date),
                    FieldDef::new("LeadSource", "Lead Source", T::Picklist).picklist(
                        &["Web", "Phone Inquiry", "Partner Referral", "Other"],
                        false,
                        None,
                    ),
                    FieldDef::new("Description", "Contact Description", T::TextArea),
                ],
            ),
        };
        let lead = ObjectDef {
            name: "Lead",
            label: "Lead",
            label_plural: "Leads",
            key_prefix: "00Q",
            createable: true,
            searchable: true,
            fields: with(
                owned(),
                vec![
                    FieldDef::new("FirstName", "First Name", T::String)
                        .length(40)
                        .name_field(),
                    FieldDef::new("LastName", "Last Name", T::String)
                        .length(80)
                        .required()
                        .name_field(),
                    FieldDef::new("Name", "Full Name", T::String)
                        .length(121)
                        .system()
                        .name_field(),
                    FieldDef::new("Company", "Company", T::String).required(),
                    FieldDef::new("Title", "Title", T::String).length(128),
                    FieldDef::new("Email", "Email", T::Email),
                    FieldDef::new("Phone", "Phone", T::Phone),
                    FieldDef::new("MobilePhone", "Mobile Phone", T::Phone),
                    FieldDef::new("Fax", "Fax", T::Phone),
                    FieldDef::new("Status", "Status", T::Picklist).picklist(
                        &[
                            "Open - Not Contacted",
                            "Working - Contacted",
                            "Closed - Converted",
                            "Closed - Not Converted",
                        ],
                        true,
                        Some("Open - Not Contacted"),
                    ),
                    FieldDef::new("LeadSource", "Lead Source", T::Picklist).picklist(
                        &["Web", "Phone Inquiry", "Partner Referral", "Other"],
                        false,
                        None,
                    ),
                    FieldDef::new("Description", "Description", T::TextArea),
                ],
            ),
        };
        let case = ObjectDef {
            name: "Case",
            label: "Case",
            label_plural: "Cases",
            key_prefix: "500",
            createable: true,
            searchable: true,
            fields: with(
                owned(),
                vec![
                    FieldDef::new("CaseNumber", "Case Number", T::String)
                        .length(30)
                        .system()
                        .name_field(),
                    FieldDef::new("ContactId", "Contact ID", T::Reference)
                        .reference(&["Contact"], "Contact"),
                    FieldDef::new("AccountId", "Account ID", T::Reference)
                        .reference(&["Account"], "Account"),
                    FieldDef::new("Subject", "Subject", T::String),
                    FieldDef::new("Description", "Description", T::TextArea),
                    FieldDef::new("Status", "Status", T::Picklist).picklist(
                        &["New", "Working", "Escalated", "Closed"],
                        true,
                        Some("New"),
                    ),
                    FieldDef::new("Priority", "Priority", T::Picklist).picklist(
                        &["High", "Medium", "Low"],
                        true,
                        Some("Medium"),
                    ),
                    FieldDef::new("Origin", "Case Origin", T::Picklist).picklist(
                        &["Phone", "Email", "Web"],
                        true,
                        None,
                    ),
                    FieldDef::new("Type", "Case Type", T::Picklist).picklist(
                        &[
                            "Mechanical",
                            "Electrical",
                            "Electronic",
                            "Structural",
                            "Other",
                        ],
                        false,
                        None,
                    ),
                    FieldDef::new("Reason", "Case Reason", T::Picklist).picklist(
                        &[
                            "Installation",
                            "Equipment Complexity",
                            "Performance",
                            "Breakdown",
                            "Equipment Design",
                            "Feedback",
                            "Other",
                        ],
                        false,
                        None,
                    ),
                    FieldDef::new("IsClosed", "Closed", T::Boolean).system(),
                    FieldDef::new("ClosedDate", "Closed Date", T::DateTime).system(),
                    FieldDef::new("SuppliedName", "Web Name", T::String).length(80),
                    FieldDef::new("SuppliedEmail", "Web Email", T::Email),
                    FieldDef::new("SuppliedPhone", "Web Phone", T::String).length(40),
                ],
            ),
        };
        let user = ObjectDef {
            name: "User",
            label: "User",
            label_plural: "Users",
            key_prefix: "005",
            createable: false,
            searchable: true,
            fields: with(
                audit(),
                vec![
                    FieldDef::new("Username", "Username", T::String)
                        .length(80)
                        .required(),
                    FieldDef::new("FirstName", "First Name", T::String)
                        .length(40)
                        .name_field(),
                    FieldDef::new("LastName", "Last Name", T::String)
                        .length(80)
                        .required()
                        .name_field(),
                    FieldDef::new("Name", "Full Name", T::String)
                        .length(121)
                        .system()
                        .name_field(),
                    FieldDef::new("Alias", "Alias", T::String).length(8),
                    FieldDef::new("Email", "Email", T::Email).required(),
                    FieldDef::new("Phone", "Phone", T::Phone),
                    FieldDef::new("MobilePhone", "Mobile", T::Phone),
                    FieldDef::new("IsActive", "Active", T::Boolean),
                ],
            ),
        };
        let task = ObjectDef {
            name: "Task",
            label: "Task",
            label_plural: "Tasks",
            key_prefix: "00T",
            createable: true,
            searchable: true,
            fields: with(
                owned(),
                vec![
                    FieldDef::new("Subject", "Subject", T::String).name_field(),
                    FieldDef::new("WhoId", "Name ID", T::Reference)
                        .reference(&["Contact", "Lead"], "Who"),
                    FieldDef::new("WhatId", "Related To ID", T::Reference)
                        .reference(&["Account", "Case"], "What"),
                    FieldDef::new("ActivityDate", "Due Date Only", T::Date),
                    FieldDef::new("Status", "Status", T::Picklist).picklist(
                        &[
                            "Not Started",
                            "In Progress",
                            "Completed",
                            "Waiting on someone else",
                            "Deferred",
                        ],
                        true,
                        Some("Not Started"),
                    ),
                    FieldDef::new("Priority", "Priority", T::Picklist).picklist(
                        &["High", "Normal", "Low"],
                        true,
                        Some("Normal"),
                    ),
                    FieldDef::new("CallType", "Call Type", T::Picklist).picklist(
                        &["Internal", "Inbound", "Outbound"],
                        true,
                        None,
                    ),
                    FieldDef::new("CallDurationInSeconds", "Call Duration", T::Int),
                    FieldDef::new("Description", "Comments", T::TextArea),
                    FieldDef::new("IsClosed", "Closed", T::Boolean).system(),
                ],
            ),
        };
        Self {
            objects: vec![account, contact, lead, case, user, task],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case() {
        let schema = Schema::standard();
        let contact = schema.object("contact").map(|object| object.name);
        assert_eq!(contact, Some("Contact"));
        let field = schema
            .object("Case")
            .and_then(|case| case.field("status"))
            .map(|f| f.name);
        assert_eq!(field, Some("Status"));
        let relationship = schema
            .object("Case")
            .and_then(|case| case.relationship("ACCOUNT"))
            .map(|f| f.name);
        assert_eq!(relationship, Some("AccountId"));
    }

    #[test]
    fn key_prefixes_are_the_standard_ones() {
        let schema = Schema::standard();
        for (prefix, object) in [
            ("001", "Account"),
            ("003", "Contact"),
            ("00Q", "Lead"),
            ("500", "Case"),
            ("005", "User"),
            ("00T", "Task"),
        ] {
            let found = schema
                .object_for_id(&format!("{prefix}000000000000"))
                .map(|o| o.name);
            assert_eq!(found, Some(object));
        }
    }
}

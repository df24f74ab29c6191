//! A small org for the SOQL and SOSL unit tests: one user, three accounts, four contacts (one
//! deleted), a lead, two tasks and three cases (two of Ada's, one of Bob's), with phones in
//! every format the demo data uses.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::schema::Schema;
use crate::store::Store;

pub(crate) struct Org {
    pub schema: Schema,
    pub store: Store,
    /// Record ids by a short name (`ada`, `acme`, …).
    pub ids: HashMap<&'static str, String>,
}

impl Org {
    pub fn id(&self, name: &str) -> String {
        self.ids.get(name).cloned().unwrap_or_default()
    }

    fn insert(&mut self, key: &'static str, object: &str, fields: &[(&'static str, Value)]) {
        let Some(object) = self.schema.object(object) else {
            return;
        };
        let fields: BTreeMap<&'static str, Value> = fields.iter().cloned().collect();
        let user = self.ids.get("guy").cloned();
        let id = self
            .store
            .insert_seed(object, fields, user.as_deref(), chrono::Utc::now());
        self.ids.insert(key, id);
    }
}

pub(crate) fn org() -> Org {
    let mut org = Org {
        schema: Schema::standard(),
        store: Store::new(),
        ids: HashMap::new(),
    };
    org.insert(
        "guy",
        "User",
        &[
            ("Username", json!("guy@example.com")),
            ("FirstName", json!("Guy")),
            ("LastName", json!("Smiley")),
            ("Email", json!("guy@example.com")),
        ],
    );
    let guy = org.id("guy");
    org.insert(
        "acme",
        "Account",
        &[
            ("Name", json!("Acme")),
            ("Phone", json!("+44 11 2233 4455")),
            ("Industry", json!("Technology")),
            ("NumberOfEmployees", json!(50)),
            ("AnnualRevenue", json!(1250000.5)),
            ("OwnerId", json!(guy)),
        ],
    );
    org.insert(
        "globex",
        "Account",
        &[
            ("Name", json!("Globex")),
            ("Phone", json!("(555) 555-0100")),
            ("NumberOfEmployees", json!(10)),
            ("OwnerId", Value::Null),
        ],
    );
    org.insert("initech", "Account", &[("Name", json!("Initech"))]);
    let (acme, globex) = (org.id("acme"), org.id("globex"));
    org.insert(
        "ada",
        "Contact",
        &[
            ("FirstName", json!("Ada")),
            ("LastName", json!("Lovelace")),
            ("AccountId", json!(acme)),
            ("Email", json!("ada@acme.com")),
            ("Phone", json!("555.555.0101")),
            ("OtherPhone", json!("+44 11 2233 4455")),
            ("Birthdate", json!("1815-12-10")),
        ],
    );
    org.insert(
        "bob",
        "Contact",
        &[
            ("FirstName", json!("Bob")),
            ("LastName", json!("O'Brien")),
            ("AccountId", json!(globex)),
            ("MobilePhone", json!("5555550102")),
        ],
    );
    org.insert(
        "carol",
        "Contact",
        &[
            ("FirstName", json!("Carol")),
            ("LastName", json!("Danvers")),
            ("HomePhone", json!("+1 555-555-0103")),
        ],
    );
    org.insert(
        "dee",
        "Contact",
        &[
            ("FirstName", json!("Dee")),
            ("LastName", json!("Leted")),
            ("Phone", json!("5555550100")),
        ],
    );
    let dee = org.id("dee");
    if let Some(contact) = org.schema.object("Contact").cloned() {
        let _ = org.store.delete(&contact, &dee);
    }
    org.insert(
        "lou",
        "Lead",
        &[
            ("FirstName", json!("Lou")),
            ("LastName", json!("Lead")),
            ("Company", json!("LeadCo")),
            ("Phone", json!("555-555-0199 x12")),
        ],
    );
    let (ada, lou) = (org.id("ada"), org.id("lou"));
    org.insert(
        "call_ada",
        "Task",
        &[("Subject", json!("Call Ada")), ("WhoId", json!(ada))],
    );
    org.insert(
        "call_lou",
        "Task",
        &[("Subject", json!("Call Lou")), ("WhoId", json!(lou))],
    );
    let bob = org.id("bob");
    for (key, subject, status, contact, account, priority) in [
        ("jam", "Printer jam", "New", &ada, &acme, "High"),
        ("login", "Login trouble", "Closed", &ada, &acme, "Low"),
        ("invoice", "Invoice query", "New", &bob, &globex, "High"),
    ] {
        org.insert(
            key,
            "Case",
            &[
                ("Subject", json!(subject)),
                ("Status", json!(status)),
                ("ContactId", json!(contact)),
                ("AccountId", json!(account)),
                ("Origin", json!("Phone")),
                ("Priority", json!(priority)),
            ],
        );
    }
    org
}

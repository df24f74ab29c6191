//! The Salesforce operations: query, search, sObject CRUD, describe, Chatter and limits.

use std::collections::HashSet;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, DataRequest};
use crate::error::{Error, Result};
use crate::safety::{validate_id, validate_identifier};
use crate::transport::Retry;

/// One page of a query, or all pages collected by [`Client::query`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    /// The number of rows the query matched, across all pages.
    pub total_size: u64,
    /// `true` when no more pages follow.
    pub done: bool,
    /// Records as Salesforce sent them, `attributes` included.
    pub records: Vec<Value>,
    /// Where the next page is, when `done` is `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_records_url: Option<String>,
}

impl Client {
    /// Runs a SOQL query and follows `nextRecordsUrl` until every page is collected.
    pub async fn query(&self, soql: &str) -> Result<QueryResult> {
        let first = self.query_page(soql).await?;
        self.collect_pages(first).await
    }

    /// Like [`Client::query`] but through `queryAll`, which includes deleted and archived rows.
    pub async fn query_all(&self, soql: &str) -> Result<QueryResult> {
        let first = self.first_query_page("queryAll", soql).await?;
        self.collect_pages(first).await
    }

    /// Runs a SOQL query and returns its first page only.
    pub async fn query_page(&self, soql: &str) -> Result<QueryResult> {
        self.first_query_page("query", soql).await
    }

    /// Fetches the page a `nextRecordsUrl` points to.
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryResult> {
        let mut request =
            DataRequest::new(Method::GET, next_records_url.to_owned(), Retry::Idempotent);
        self.add_query_options(&mut request);
        let reply = self.execute(&request).await?;
        parse_query_result(reply.status, reply.into_json()?)
    }

    async fn first_query_page(&self, resource: &str, soql: &str) -> Result<QueryResult> {
        if soql.trim().is_empty() {
            return Err(Error::InvalidInput("the SOQL query is empty".into()));
        }
        let mut request =
            DataRequest::new(Method::GET, self.data_path(resource), Retry::Idempotent);
        request.query.push(("q", soql.to_owned()));
        self.add_query_options(&mut request);
        let reply = self.execute(&request).await?;
        parse_query_result(reply.status, reply.into_json()?)
    }

    async fn collect_pages(&self, mut result: QueryResult) -> Result<QueryResult> {
        let mut seen = HashSet::new();
        while !result.done {
            let Some(next) = result.next_records_url.take() else {
                return Err(Error::MalformedResponse {
                    status: 200,
                    detail: "a query page says done=false but has no nextRecordsUrl".into(),
                });
            };
            // A server that hands out the same page twice would otherwise loop forever.
            if !seen.insert(next.clone()) {
                return Err(Error::MalformedResponse {
                    status: 200,
                    detail: "a query returned the same nextRecordsUrl twice".into(),
                });
            }
            let page = self.query_more(&next).await?;
            result.records.extend(page.records);
            result.done = page.done;
            result.next_records_url = page.next_records_url;
        }
        Ok(result)
    }

    fn add_query_options(&self, request: &mut DataRequest<'_>) {
        if let Some(size) = self.config().query_batch_size {
            request
                .headers
                .push(("Sforce-Query-Options", format!("batchSize={size}")));
        }
    }

    /// Runs a SOSL search (`GET /search?q=`) and returns `searchRecords`. Escape caller values
    /// with [`crate::safety::escape_sosl`].
    pub async fn search(&self, sosl: &str) -> Result<Vec<Value>> {
        if sosl.trim().is_empty() {
            return Err(Error::InvalidInput("the SOSL search is empty".into()));
        }
        let mut request =
            DataRequest::new(Method::GET, self.data_path("search"), Retry::Idempotent);
        request.query.push(("q", sosl.to_owned()));
        let reply = self.execute(&request).await?;
        search_records(reply.status, reply.into_json()?)
    }

    /// Runs a parameterized search: `body` is the JSON document of
    /// `POST /parameterizedSearch` (`{"q", "fields", "sobjects", "overallLimit", ...}`).
    /// It only reads, so it is retried like a GET.
    pub async fn parameterized_search(&self, body: &Value) -> Result<Vec<Value>> {
        require_object(body, "the parameterized search body")?;
        let mut request = DataRequest::new(
            Method::POST,
            self.data_path("parameterizedSearch"),
            Retry::Idempotent,
        );
        request.body = Some(body);
        let reply = self.execute(&request).await?;
        search_records(reply.status, reply.into_json()?)
    }

    /// Creates a record and returns its id. Never retried after the request went out.
    pub async fn create(&self, sobject: &str, fields: &Value) -> Result<String> {
        validate_identifier(sobject)?;
        require_object(fields, "the record's fields")?;
        let mut request = DataRequest::new(
            Method::POST,
            self.data_path(&format!("sobjects/{sobject}")),
            Retry::OnlyIfNotSent,
        );
        request.body = Some(fields);
        let reply = self.execute(&request).await?;
        let status = reply.status;
        let body = reply.into_json()?;
        body.get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(Error::MalformedResponse {
                status,
                detail: "the create response has no id".into(),
            })
    }

    /// Reads a record, all fields or only `fields`.
    pub async fn get(&self, sobject: &str, id: &str, fields: Option<&[&str]>) -> Result<Value> {
        validate_identifier(sobject)?;
        validate_id(id)?;
        let mut request = DataRequest::new(
            Method::GET,
            self.data_path(&format!("sobjects/{sobject}/{id}")),
            Retry::Idempotent,
        );
        if let Some(fields) = fields {
            for field in fields {
                validate_identifier(field)?;
            }
            request.query.push(("fields", fields.join(",")));
        }
        self.execute(&request).await?.into_json()
    }

    /// Updates a record's fields (`PATCH`, 204). Not retried after the request went out.
    pub async fn update(&self, sobject: &str, id: &str, fields: &Value) -> Result<()> {
        validate_identifier(sobject)?;
        validate_id(id)?;
        require_object(fields, "the record's fields")?;
        let mut request = DataRequest::new(
            Method::PATCH,
            self.data_path(&format!("sobjects/{sobject}/{id}")),
            Retry::OnlyIfNotSent,
        );
        request.body = Some(fields);
        self.execute(&request).await.map(|_| ())
    }

    /// Deletes a record (204). Retried: a repeat that finds the record already deleted counts
    /// as success.
    pub async fn delete(&self, sobject: &str, id: &str) -> Result<()> {
        validate_identifier(sobject)?;
        validate_id(id)?;
        let request = DataRequest::new(
            Method::DELETE,
            self.data_path(&format!("sobjects/{sobject}/{id}")),
            Retry::Idempotent,
        );
        self.execute(&request).await.map(|_| ())
    }

    /// `GET /sobjects`: every object the user can see.
    pub async fn describe_global(&self) -> Result<Value> {
        self.get_json(self.data_path("sobjects")).await
    }

    /// `GET /sobjects/{sobject}/describe`: fields, relationships and URLs of one object.
    pub async fn describe(&self, sobject: &str) -> Result<Value> {
        validate_identifier(sobject)?;
        self.get_json(self.data_path(&format!("sobjects/{sobject}/describe")))
            .await
    }

    /// `GET /limits`: the org's limits (`DailyApiRequests`, ...).
    pub async fn limits(&self) -> Result<Value> {
        self.get_json(self.data_path("limits")).await
    }

    /// Posts a Chatter feed element; `body` is the feed-element JSON the caller built. Returns
    /// Salesforce's answer (the new element, with its `id`). Never retried after it went out.
    pub async fn chatter_post(&self, body: &Value) -> Result<Value> {
        require_object(body, "the Chatter feed element")?;
        let mut request = DataRequest::new(
            Method::POST,
            self.data_path("chatter/feed-elements"),
            Retry::OnlyIfNotSent,
        );
        request.body = Some(body);
        self.execute(&request).await?.into_json()
    }

    /// Comments on a Chatter feed element; `body` is the comment JSON. Never retried after it
    /// went out.
    pub async fn chatter_comment(&self, feed_element_id: &str, body: &Value) -> Result<Value> {
        validate_id(feed_element_id)?;
        require_object(body, "the Chatter comment")?;
        let mut request = DataRequest::new(
            Method::POST,
            self.data_path(&format!(
                "chatter/feed-elements/{feed_element_id}/capabilities/comments/items"
            )),
            Retry::OnlyIfNotSent,
        );
        request.body = Some(body);
        self.execute(&request).await?.into_json()
    }

    async fn get_json(&self, path: String) -> Result<Value> {
        let request = DataRequest::new(Method::GET, path, Retry::Idempotent);
        self.execute(&request).await?.into_json()
    }

    fn data_path(&self, resource: &str) -> String {
        format!("/services/data/v{}/{resource}", self.api_version())
    }
}

fn require_object(value: &Value, what: &str) -> Result<()> {
    if value.is_object() {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("{what} must be a JSON object")))
    }
}

fn parse_query_result(status: u16, body: Value) -> Result<QueryResult> {
    serde_json::from_value(body).map_err(|_| Error::MalformedResponse {
        status,
        detail: "the query response lacks totalSize, done or records".into(),
    })
}

/// `{"searchRecords":[...]}`; the bare array of API versions before 37.0 is accepted too.
fn search_records(status: u16, body: Value) -> Result<Vec<Value>> {
    match body {
        Value::Array(records) => Ok(records),
        Value::Object(mut object) => match object.remove("searchRecords") {
            Some(Value::Array(records)) => Ok(records),
            _ => Err(Error::MalformedResponse {
                status,
                detail: "the search response has no searchRecords array".into(),
            }),
        },
        _ => Err(Error::MalformedResponse {
            status,
            detail: "the search response is not an object".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pages_parse_with_and_without_next_url() -> Result<()> {
        let page = parse_query_result(
            200,
            serde_json::json!({"totalSize": 3, "done": false, "records": [{"Id": "1"}],
                "nextRecordsUrl": "/services/data/v62.0/query/01g-1"}),
        )?;
        assert_eq!(page.total_size, 3);
        assert_eq!(
            page.next_records_url.as_deref(),
            Some("/services/data/v62.0/query/01g-1")
        );
        let last = parse_query_result(
            200,
            serde_json::json!({"totalSize": 0, "done": true, "records": []}),
        )?;
        assert!(last.done && last.next_records_url.is_none());
        assert!(parse_query_result(200, serde_json::json!({"records": "nope"})).is_err());
        Ok(())
    }

    #[test]
    fn search_bodies_yield_their_records() {
        let record = serde_json::json!({"Id": "003"});
        let cases = [
            (
                serde_json::json!({"searchRecords": [record.clone()]}),
                Some(1),
            ),
            (serde_json::json!({"searchRecords": []}), Some(0)),
            (serde_json::json!([record]), Some(1)),
            (serde_json::json!({"records": []}), None),
            (serde_json::json!("x"), None),
        ];
        for (body, expected) in cases {
            let count = search_records(200, body.clone())
                .ok()
                .map(|records| records.len());
            assert_eq!(count, expected, "body {body}");
        }
    }
}

//! The REST API under `/services/data`: versions, query, search, sObjects, describe, Chatter
//! and limits, with Salesforce's bearer check and `Sforce-Limit-Info` on every data call.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::{RestError, json_response};
use crate::ids;
use crate::org::{Cursor, FeedElement, Org, Shared, random_string};
use crate::schema::ObjectDef;
use crate::store::format_datetime;
use crate::{soql, sosl};

/// Release names of the API versions, for `GET /services/data/`.
fn version_label(version: &str) -> String {
    let label = match version {
        "59.0" => "Winter '24",
        "60.0" => "Spring '24",
        "61.0" => "Summer '24",
        "62.0" => "Winter '25",
        "63.0" => "Spring '25",
        "64.0" => "Summer '25",
        "65.0" => "Winter '26",
        "66.0" => "Spring '26",
        "67.0" => "Summer '26",
        "68.0" => "Winter '27",
        _ => return format!("API {version}"),
    };
    label.to_string()
}

/// One authenticated data request.
struct Call<'a> {
    org: &'a mut Org,
    user_id: String,
    version: String,
    method: Method,
    params: Vec<(String, String)>,
    headers: &'a HeaderMap,
    body: &'a Bytes,
}

impl Call<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

type Reply = Result<Response, RestError>;

/// Everything under `/services/` that is not OAuth.
pub async fn dispatch(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let Some(rest) = path.strip_prefix("/services/data") else {
        return RestError::not_found().into_response();
    };
    let segments: Vec<&str> = rest
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let mut org = shared.lock();

    // The versions list needs no session and does not count against limits.
    let Some((version_segment, resource)) = segments.split_first() else {
        if method != Method::GET && method != Method::HEAD {
            return RestError::method_not_allowed(method.as_str(), "GET,HEAD").into_response();
        }
        let versions: Vec<Value> = org
            .api_versions
            .iter()
            .map(|version| {
                json!({"label": version_label(version), "url": format!("/services/data/v{version}"), "version": version})
            })
            .collect();
        return json_response(StatusCode::OK, &Value::Array(versions));
    };
    let version = match version_segment.strip_prefix('v') {
        Some(version) if org.api_versions.iter().any(|served| served == version) => {
            version.to_string()
        }
        _ if *version_segment == "latest" => org.api_versions.last().cloned().unwrap_or_default(),
        _ => return RestError::not_found().into_response(),
    };

    let user_id = match authenticate(&org, &headers) {
        Ok(user_id) => user_id,
        Err(error) => return error.into_response(),
    };
    let mut response = if org.api_used >= org.api_max {
        RestError::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
        .into_response()
    } else {
        org.api_used += 1;
        let params: Vec<(String, String)> = uri
            .query()
            .map(|query| {
                form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let mut call = Call {
            org: &mut org,
            user_id,
            version,
            method,
            params,
            headers: &headers,
            body: &body,
        };
        route(&mut call, resource).unwrap_or_else(IntoResponse::into_response)
    };
    if let Ok(value) = HeaderValue::from_str(&org.limit_header()) {
        response.headers_mut().insert("Sforce-Limit-Info", value);
    }
    response
}

fn authenticate(org: &Org, headers: &HeaderMap) -> Result<String, RestError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return Err(RestError::invalid_session());
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("OAuth "))
        .ok_or_else(|| {
            RestError::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTH_HEADER",
                "INVALID_HEADER_TYPE",
            )
        })?;
    org.session_user(token.trim())
        .ok_or_else(RestError::invalid_session)
}

fn route(call: &mut Call<'_>, resource: &[&str]) -> Reply {
    let method = call.method.clone();
    match resource {
        [] => only(&method, &[Method::GET], || resources(call)),
        ["limits"] => only(&method, &[Method::GET], || limits(call)),
        ["query"] => only(&method, &[Method::GET], || query(call, false)),
        ["queryAll"] => only(&method, &[Method::GET], || query(call, true)),
        ["query" | "queryAll", locator] => {
            only(&method, &[Method::GET], || query_more(call, locator))
        }
        ["search"] => only(&method, &[Method::GET], || search(call)),
        ["parameterizedSearch"] => only(&method, &[Method::GET, Method::POST], || {
            parameterized_search(call)
        }),
        ["sobjects"] => only(&method, &[Method::GET], || describe_global(call)),
        ["sobjects", object] => match method {
            Method::GET | Method::HEAD => object_info(call, object),
            Method::POST => create(call, object),
            _ => Err(RestError::method_not_allowed(
                method.as_str(),
                "GET,HEAD,POST",
            )),
        },
        ["sobjects", object, "describe"] => {
            only(&method, &[Method::GET], || describe(call, object))
        }
        ["sobjects", object, id] => {
            let patch_override =
                method == Method::POST && call.param("_HttpMethod") == Some("PATCH");
            match method {
                Method::GET | Method::HEAD => retrieve(call, object, id),
                Method::PATCH => update(call, object, id),
                Method::POST if patch_override => update(call, object, id),
                Method::DELETE => delete(call, object, id),
                _ => Err(RestError::method_not_allowed(
                    method.as_str(),
                    "GET,HEAD,PATCH,DELETE",
                )),
            }
        }
        ["chatter", "feed-elements"] => only(&method, &[Method::POST], || post_feed_element(call)),
        ["chatter", "feed-elements", id] => {
            only(&method, &[Method::GET], || get_feed_element(call, id))
        }
        [
            "chatter",
            "feed-elements",
            id,
            "capabilities",
            "comments",
            "items",
        ] => match method {
            Method::POST => post_comment(call, id),
            Method::GET => list_comments(call, id),
            _ => Err(RestError::method_not_allowed(
                method.as_str(),
                "GET,HEAD,POST",
            )),
        },
        _ => Err(RestError::not_found()),
    }
}

fn only(method: &Method, allowed: &[Method], handler: impl FnOnce() -> Reply) -> Reply {
    let allowed_get = allowed.contains(&Method::GET) && *method == Method::HEAD;
    if allowed.contains(method) || allowed_get {
        handler()
    } else {
        let mut names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        if allowed.contains(&Method::GET) {
            names.insert(1.min(names.len()), "HEAD");
        }
        Err(RestError::method_not_allowed(
            method.as_str(),
            &names.join(","),
        ))
    }
}

fn ok(body: &Value) -> Reply {
    Ok(json_response(StatusCode::OK, body))
}

fn resources(call: &Call<'_>) -> Reply {
    let base = format!("/services/data/v{}", call.version);
    let names = [
        "sobjects",
        "query",
        "queryAll",
        "search",
        "parameterizedSearch",
        "limits",
        "chatter",
    ];
    let map: Map<String, Value> = names
        .iter()
        .map(|name| (name.to_string(), json!(format!("{base}/{name}"))))
        .collect();
    ok(&Value::Object(map))
}

/// `GET /limits`: every limit the REST API reference lists for the resource, each
/// `{"Max", "Remaining"}`, with a Developer Edition org's allocations. As on a real org,
/// `DailyApiRequests` and the streaming limits also carry one entry per connected app, and
/// `PermissionSets` its `CreateCustom` sub-limit. Only `DailyApiRequests` moves (every data call
/// counts, see `org.api_used`).
fn limits(call: &Call<'_>) -> Reply {
    let org = &call.org;
    let limit = |max: u64| json!({"Max": max, "Remaining": max});
    let per_app = |max: u64, remaining: u64| {
        let mut entry = json!({"Max": max, "Remaining": remaining});
        for app in [
            "Chatter Desktop",
            "Chatter Mobile for BlackBerry",
            "Salesforce Files",
            "Salesforce Mobile Dashboards",
            "Salesforce Touch",
            "Salesforce for Outlook",
            "SalesforceA",
            "SalesforceIQ",
        ] {
            entry[app] = json!({"Max": 0, "Remaining": 0});
        }
        entry
    };
    let mut limits: Map<String, Value> = [
        ("ActiveScratchOrgs", 3),
        ("AnalyticsExternalDataSizeMB", 40960),
        ("ConcurrentAsyncGetReportInstances", 200),
        ("ConcurrentEinsteinDataInsightsStoryCreation", 5),
        ("ConcurrentEinsteinDiscoveryStoryCreation", 2),
        ("ConcurrentSyncReportRuns", 20),
        ("DailyAnalyticsDataflowJobExecutions", 60),
        ("DailyAnalyticsUploadedFilesSizeMB", 51200),
        ("DailyAsyncApexExecutions", 250000),
        ("DailyAsyncApexTests", 500),
        ("DailyBulkApiBatches", 15000),
        ("DailyBulkV2QueryFileStorageMB", 976562),
        ("DailyBulkV2QueryJobs", 10000),
        ("DailyDeliveredPlatformEvents", 10000),
        ("DailyDurableGenericStreamingApiEvents", 10000),
        ("DailyDurableStreamingApiEvents", 10000),
        ("DailyEinsteinDataInsightsStoryCreation", 1000),
        ("DailyEinsteinDiscoveryPredictAPICalls", 50000),
        ("DailyEinsteinDiscoveryPredictionsByCDC", 500000),
        ("DailyEinsteinDiscoveryStoryCreation", 100),
        ("DailyFunctionsApiCallLimit", 235000),
        ("DailyScratchOrgs", 6),
        ("DailyStandardVolumePlatformEvents", 10000),
        ("DailyWorkflowEmails", 405),
        ("DataStorageMB", 5),
        ("DurableStreamingApiConcurrentClients", 20),
        ("FileStorageMB", 20),
        ("HourlyAsyncReportRuns", 1200),
        ("HourlyDashboardRefreshes", 200),
        ("HourlyDashboardResults", 5000),
        ("HourlyDashboardStatuses", 999999999),
        ("HourlyLongTermIdMapping", 100000),
        ("HourlyManagedContentPublicRequests", 50000),
        ("HourlyODataCallout", 10000),
        ("HourlyPublishedPlatformEvents", 50000),
        ("HourlyPublishedStandardVolumePlatformEvents", 1000),
        ("HourlyShortTermIdMapping", 100000),
        ("HourlySyncReportRuns", 500),
        ("HourlyTimeBasedWorkflow", 50),
        ("MassEmail", 10),
        ("MonthlyEinsteinDiscoveryStoryCreation", 500),
        ("MonthlyPlatformEventsUsageEntitlement", 0),
        ("Package2VersionCreates", 6),
        ("Package2VersionCreatesWithoutValidation", 500),
        ("PrivateConnectOutboundCalloutHourlyLimitMB", 0),
        ("SingleEmail", 15),
        ("StreamingApiConcurrentClients", 20),
    ]
    .into_iter()
    .map(|(name, max)| (name.to_string(), limit(max)))
    .collect();
    limits.insert(
        "DailyApiRequests".into(),
        per_app(org.api_max, org.api_max.saturating_sub(org.api_used)),
    );
    limits.insert(
        "DailyGenericStreamingApiEvents".into(),
        per_app(10000, 10000),
    );
    limits.insert("DailyStreamingApiEvents".into(), per_app(10000, 10000));
    let mut permission_sets = limit(1500);
    permission_sets["CreateCustom"] = limit(1000);
    limits.insert("PermissionSets".into(), permission_sets);
    ok(&Value::Object(limits))
}

/// `Sforce-Query-Options: batchSize=N` (200..=2000), else the org's default.
fn batch_size(call: &Call<'_>) -> usize {
    call.headers
        .get("Sforce-Query-Options")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value.split(',').find_map(|option| {
                option
                    .trim()
                    .strip_prefix("batchSize=")?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
        })
        .map_or(call.org.query_batch_size, |size| size.clamp(200, 2000))
}

fn query(call: &mut Call<'_>, all_rows: bool) -> Reply {
    let Some(statement) = call.param("q").map(str::to_string) else {
        return Err(RestError::malformed_query(
            "A query string has to be specified",
        ));
    };
    if statement.trim().is_empty() {
        return Err(RestError::malformed_query(
            "SOQL statements cannot be empty or null",
        ));
    }
    let options = soql::QueryOptions {
        include_deleted: all_rows,
        api_version: call.version.clone(),
    };
    let output = soql::run(&statement, &call.org.schema, &call.org.store, &options)?;
    let batch = batch_size(call);
    let cursor = Cursor {
        records: output.records,
        batch_size: batch,
        all_rows,
    };
    let cursor_id = format!("01g{}", random_string(15));
    page(call, cursor, cursor_id, 0, output.total_size)
}

/// Serves one page of a cursor and keeps the rest for `nextRecordsUrl`.
fn page(
    call: &mut Call<'_>,
    cursor: Cursor,
    cursor_id: String,
    offset: usize,
    total_size: usize,
) -> Reply {
    let end = (offset + cursor.batch_size).min(cursor.records.len());
    let records: Vec<Value> = cursor
        .records
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut body =
        json!({"totalSize": total_size, "done": end >= cursor.records.len(), "records": records});
    if end < cursor.records.len() {
        let kind = if cursor.all_rows { "queryAll" } else { "query" };
        body["nextRecordsUrl"] = json!(format!(
            "/services/data/v{}/{kind}/{cursor_id}-{end}",
            call.version
        ));
        call.org.keep_cursor(cursor_id, cursor);
    } else {
        call.org.close_cursor(&cursor_id);
    }
    ok(&body)
}

fn query_more(call: &mut Call<'_>, locator: &str) -> Reply {
    let invalid = || RestError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    let (cursor_id, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    let cursor = call
        .org
        .cursors
        .get(cursor_id)
        .cloned()
        .ok_or_else(invalid)?;
    if offset == 0 || offset >= cursor.records.len() {
        return Err(invalid());
    }
    let total = cursor.records.len();
    page(call, cursor, cursor_id.to_string(), offset, total)
}

fn search_options(call: &Call<'_>) -> sosl::SearchOptions {
    sosl::SearchOptions {
        api_version: call.version.clone(),
        phone_match: call.org.phone_match,
    }
}

fn search(call: &mut Call<'_>) -> Reply {
    let statement = call.param("q").unwrap_or_default().to_string();
    if statement.trim().is_empty() {
        return Err(RestError::bad_request(
            "MALFORMED_SEARCH",
            "No search term found. The search term must be enclosed in braces.",
        ));
    }
    let records = sosl::search(
        &statement,
        &call.org.schema,
        &call.org.store,
        &search_options(call),
    )?;
    ok(&json!({"searchRecords": records}))
}

fn parameterized_search(call: &mut Call<'_>) -> Reply {
    let request = if call.method == Method::POST {
        let value = parse_json_body(call.body)?;
        serde_json::from_value::<sosl::ParameterizedSearch>(value)
            .map_err(|error| RestError::bad_request("JSON_PARSER_ERROR", error.to_string()))?
    } else {
        sosl::ParameterizedSearch::from_query_pairs(&call.params)?
    };
    let records = sosl::parameterized(
        &request,
        &call.org.schema,
        &call.org.store,
        &search_options(call),
    )?;
    ok(&json!({"searchRecords": records}))
}

fn describe_global(call: &Call<'_>) -> Reply {
    let objects: Vec<Value> = call
        .org
        .schema
        .objects
        .iter()
        .map(|object| object.describe_global_entry(&call.version))
        .collect();
    ok(&json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects}))
}

fn object(call: &Call<'_>, name: &str) -> Result<ObjectDef, RestError> {
    call.org
        .schema
        .object(name)
        .cloned()
        .ok_or_else(RestError::not_found)
}

fn describe(call: &Call<'_>, name: &str) -> Reply {
    let object = object(call, name)?;
    ok(&object.describe(&call.version, &call.org.schema))
}

fn object_info(call: &Call<'_>, name: &str) -> Reply {
    let object = object(call, name)?;
    let recent: Vec<Value> = call
        .org
        .store
        .records_of(object.name)
        .filter(|record| !record.deleted)
        .rev()
        .take(5)
        .map(|record| {
            let mut item = json!({"attributes": attributes(&call.version, object.name, &record.id), "Id": record.id});
            if let Some(name) = record.fields.get("Name") {
                item["Name"] = name.clone();
            }
            item
        })
        .collect();
    ok(
        &json!({"objectDescribe": object.describe_global_entry(&call.version), "recentItems": recent}),
    )
}

fn attributes(version: &str, object: &str, id: &str) -> Value {
    json!({"type": object, "url": format!("/services/data/v{version}/sobjects/{object}/{id}")})
}

/// Parses a JSON request body the way Salesforce reports problems with it.
fn parse_json_body(body: &Bytes) -> Result<Value, RestError> {
    if body.is_empty() {
        return Err(RestError::bad_request(
            "JSON_PARSER_ERROR",
            "No content to map due to end-of-input at [line:1, column:0]",
        ));
    }
    serde_json::from_slice::<Value>(body).map_err(|error| {
        RestError::bad_request(
            "JSON_PARSER_ERROR",
            format!(
                "{} at [line:{}, column:{}]",
                error_summary(&error),
                error.line(),
                error.column()
            ),
        )
    })
}

fn error_summary(error: &serde_json::Error) -> String {
    let text = error.to_string();
    // serde_json appends " at line X column Y"; Salesforce puts the position in brackets.
    text.split(" at line ").next().unwrap_or(&text).to_string()
}

fn json_object(body: &Bytes) -> Result<Map<String, Value>, RestError> {
    match parse_json_body(body)? {
        Value::Object(map) => Ok(map),
        other => Err(RestError::bad_request(
            "JSON_PARSER_ERROR",
            format!(
                "Cannot deserialize instance of SObject from {} value or request may be missing a required field at [line:1, column:1]",
                match other {
                    Value::Array(_) => "START_ARRAY",
                    Value::String(_) => "VALUE_STRING",
                    Value::Number(_) => "VALUE_NUMBER_INT",
                    _ => "VALUE_NULL",
                }
            ),
        )),
    }
}

fn create(call: &mut Call<'_>, name: &str) -> Reply {
    let object = object(call, name)?;
    let input = json_object(call.body)?;
    if !object.createable {
        return Err(RestError::bad_request(
            "INVALID_TYPE_FOR_OPERATION",
            format!("entity type {} does not support insert", object.name),
        ));
    }
    let org = &mut *call.org;
    let id = org.store.create(
        &org.schema,
        &object,
        &input,
        &call.user_id,
        chrono::Utc::now(),
    )?;
    let location = format!(
        "/services/data/v{}/sobjects/{}/{id}",
        call.version, object.name
    );
    let mut response = json_response(
        StatusCode::CREATED,
        &json!({"id": id, "success": true, "errors": []}),
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

fn retrieve(call: &Call<'_>, name: &str, id: &str) -> Reply {
    let object = object(call, name)?;
    let Ok(id18) = ids::to_18(id) else {
        return Err(RestError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {id}"),
        ));
    };
    let record = call
        .org
        .store
        .get(&id18)
        .filter(|record| record.sobject == object.name)
        .ok_or_else(RestError::not_found)?;
    if record.deleted {
        return Err(RestError::new(
            StatusCode::NOT_FOUND,
            "ENTITY_IS_DELETED",
            "entity is deleted",
        )
        .with_fields(vec![]));
    }
    let mut body = Map::new();
    body.insert(
        "attributes".into(),
        attributes(&call.version, object.name, &record.id),
    );
    match call.param("fields") {
        Some(list) => {
            for requested in list
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
            {
                let field = object.field(requested).ok_or_else(|| {
                    RestError::bad_request(
                        "INVALID_FIELD",
                        format!("No such column '{requested}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", object.name),
                    )
                })?;
                body.insert(field.name.into(), record.get(field.name).clone());
            }
        }
        None => {
            for field in &object.fields {
                body.insert(field.name.into(), record.get(field.name).clone());
            }
        }
    }
    ok(&Value::Object(body))
}

/// An ID in the path of a write: malformed or of another object is `MALFORMED_ID`.
fn path_id(object: &ObjectDef, id: &str) -> Result<String, RestError> {
    let malformed = || {
        RestError::bad_request(
            "MALFORMED_ID",
            format!("Record ID: id value of incorrect type: {id}"),
        )
        .with_fields(vec!["Id".into()])
    };
    let id18 = ids::to_18(id).map_err(|_| malformed())?;
    if !id18.starts_with(object.key_prefix) {
        return Err(malformed());
    }
    Ok(id18)
}

fn update(call: &mut Call<'_>, name: &str, id: &str) -> Reply {
    let object = object(call, name)?;
    let input = json_object(call.body)?;
    let org = &mut *call.org;
    // Salesforce checks the fields before the ID: an unknown field on a bad ID is INVALID_FIELD.
    org.store
        .check_update_fields(&org.schema, &object, &input)?;
    let id18 = path_id(&object, id)?;
    org.store.update(
        &org.schema,
        &object,
        &id18,
        &input,
        &call.user_id,
        chrono::Utc::now(),
    )?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn delete(call: &mut Call<'_>, name: &str, id: &str) -> Reply {
    let object = object(call, name)?;
    let id18 = path_id(&object, id)?;
    call.org.store.delete(&object, &id18)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Reads `body.messageSegments` into segments and their plain text.
fn message_segments(
    call: &Call<'_>,
    input: &Map<String, Value>,
) -> Result<(Vec<Value>, String), RestError> {
    let invalid = |message: &str| RestError::bad_request("INVALID_INPUT", message.to_string());
    let segments = input
        .get("body")
        .and_then(|body| body.get("messageSegments"))
        .and_then(Value::as_array)
        .filter(|segments| !segments.is_empty())
        .ok_or_else(|| invalid("Missing required input: body.messageSegments"))?;
    let mut output = Vec::new();
    let mut text = String::new();
    for segment in segments {
        match segment.get("type").and_then(Value::as_str) {
            Some("Text") => {
                let piece = segment
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("A Text segment needs text"))?;
                text.push_str(piece);
                output.push(json!({"type": "Text", "text": piece}));
            }
            Some("Mention") => {
                let id = segment
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("A Mention segment needs an id"))?;
                let id18 =
                    ids::to_18(id).map_err(|_| invalid("Invalid identifier in Mention segment"))?;
                let user = call
                    .org
                    .store
                    .get(&id18)
                    .filter(|record| record.sobject == "User")
                    .ok_or_else(RestError::not_found)?;
                let name = user.get("Name").as_str().unwrap_or_default().to_string();
                text.push('@');
                text.push_str(&name);
                output.push(json!({"type": "Mention", "text": format!("@{name}"), "record": {"id": id18, "type": "User"}}));
            }
            _ => return Err(invalid("Unsupported message segment type")),
        }
    }
    Ok((output, text))
}

fn post_feed_element(call: &mut Call<'_>) -> Reply {
    let input = json_object(call.body)?;
    match input.get("feedElementType").and_then(Value::as_str) {
        Some("FeedItem") => {}
        _ => {
            return Err(RestError::bad_request(
                "INVALID_INPUT",
                "Missing or unsupported feedElementType: use FeedItem",
            ));
        }
    }
    let subject = input
        .get("subjectId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let subject_id = if subject == "me" {
        call.user_id.clone()
    } else {
        let id18 = ids::to_18(subject).map_err(|_| {
            RestError::bad_request("INVALID_ID_FIELD", format!("Invalid identifier: {subject}"))
        })?;
        match call.org.store.get(&id18) {
            Some(record) if !record.deleted => id18,
            _ => return Err(RestError::not_found()),
        }
    };
    let (segments, text) = message_segments(call, &input)?;
    let id = call.org.next_chatter_id("0D5");
    let value = json!({
        "id": id,
        "type": "TextPost",
        "feedElementType": "FeedItem",
        "body": {"text": text, "messageSegments": segments},
        "parent": {"id": subject_id},
        "actor": {"id": call.user_id, "type": "User"},
        "createdDate": format_datetime(chrono::Utc::now()),
        "url": format!("/services/data/v{}/chatter/feed-elements/{id}", call.version),
        "capabilities": {"comments": {"page": {"items": [], "total": 0}}},
    });
    call.org.feed.push(FeedElement {
        id,
        value: value.clone(),
        comments: Vec::new(),
    });
    Ok(json_response(StatusCode::CREATED, &value))
}

fn feed_element_position(call: &Call<'_>, id: &str) -> Result<usize, RestError> {
    let id18 = ids::to_18(id).map_err(|_| RestError::not_found())?;
    call.org
        .feed
        .iter()
        .position(|element| element.id == id18)
        .ok_or_else(RestError::not_found)
}

fn get_feed_element(call: &Call<'_>, id: &str) -> Reply {
    let position = feed_element_position(call, id)?;
    let element = &call.org.feed[position];
    let mut value = element.value.clone();
    value["capabilities"]["comments"]["page"] =
        json!({"items": element.comments, "total": element.comments.len()});
    ok(&value)
}

fn post_comment(call: &mut Call<'_>, id: &str) -> Reply {
    let position = feed_element_position(call, id)?;
    let input = json_object(call.body)?;
    let (segments, text) = message_segments(call, &input)?;
    let comment_id = call.org.next_chatter_id("0D7");
    let element_id = call.org.feed[position].id.clone();
    let value = json!({
        "id": comment_id,
        "body": {"text": text, "messageSegments": segments},
        "feedElement": {"id": element_id},
        "user": {"id": call.user_id},
        "createdDate": format_datetime(chrono::Utc::now()),
        "url": format!("/services/data/v{}/chatter/comments/{comment_id}", call.version),
    });
    call.org.feed[position].comments.push(value.clone());
    Ok(json_response(StatusCode::CREATED, &value))
}

fn list_comments(call: &Call<'_>, id: &str) -> Reply {
    let position = feed_element_position(call, id)?;
    let comments = &call.org.feed[position].comments;
    ok(&json!({"items": comments, "total": comments.len()}))
}

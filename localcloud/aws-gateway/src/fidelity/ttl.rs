//! A DynamoDB table's time to live from CloudFormation (`TimeToLiveSpecification`: the
//! attribute that holds each item's expiry, in Unix seconds; DynamoDB Developer Guide, "Time to
//! Live"). moto's stack resource ignores it, so `DescribeTimeToLive` would read `DISABLED` for a
//! table whose template enables it. The gateway reads the specifications a change set asks for
//! when it is created and, once the change set has executed, sets them on moto's tables
//! (`UpdateTimeToLive`), so the table reads as AWS would make it.

use super::ChangeSets;
use crate::table::Operation;

/// A table whose template enables time to live on an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableTtl {
    pub table: String,
    pub attribute: String,
}

#[derive(Default)]
pub struct Ttl {
    change_sets: ChangeSets<Vec<TableTtl>>,
}

impl Ttl {
    /// Notes a change set's tables with time to live (`CreateChangeSet`, answered with
    /// success).
    pub fn record(&self, operation: &Operation) {
        self.change_sets.record(operation, tables);
    }

    /// The tables with time to live of the change set an `ExecuteChangeSet` ran.
    pub fn of_execution(&self, operation: &Operation) -> Vec<TableTtl> {
        self.change_sets
            .of_execution(operation)
            .map(|(_, tables)| tables)
            .unwrap_or_default()
    }
}

/// Sets time to live on moto's tables, as the stack would have.
pub async fn apply(moto: &aws_sdk_dynamodb::Client, tables: &[TableTtl]) {
    for table in tables {
        let specification = match aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
            .attribute_name(&table.attribute)
            .enabled(true)
            .build()
        {
            Ok(specification) => specification,
            Err(_) => continue,
        };
        if let Err(error) = moto
            .update_time_to_live()
            .table_name(&table.table)
            .time_to_live_specification(specification)
            .send()
            .await
        {
            eprintln!(
                "aws-gateway: could not enable time to live on {}: {error:?}",
                table.table
            );
        }
    }
}

/// The `AWS::DynamoDB::Table` resources of a template with a literal `TableName` and an
/// enabled `TimeToLiveSpecification`.
pub fn tables(template: &str) -> Vec<TableTtl> {
    super::template_resources(template, "AWS::DynamoDB::Table")
        .into_iter()
        .filter_map(|(_, properties)| {
            let ttl = properties.get("TimeToLiveSpecification")?;
            ttl.get("Enabled")?.as_bool()?.then_some(())?;
            Some(TableTtl {
                table: properties.get("TableName")?.as_str()?.to_string(),
                attribute: ttl.get("AttributeName")?.as_str()?.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tables_with_time_to_live_enabled_are_read() {
        let template = r#"
Resources:
  States:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: "states"
      TimeToLiveSpecification:
        AttributeName: expires_at
        Enabled: true
  Tokens:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: "tokens"
  Off:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: "off"
      TimeToLiveSpecification:
        AttributeName: expires_at
        Enabled: false
"#;
        assert_eq!(
            tables(template),
            [TableTtl {
                table: "states".into(),
                attribute: "expires_at".into(),
            }]
        );
    }
}

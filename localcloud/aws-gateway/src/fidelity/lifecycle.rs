//! S3 lifecycle expiry. Amazon S3 User Guide, "Managing the lifecycle of objects" and
//! "Expiring objects": an enabled rule with `Expiration { Days }` removes every object its filter
//! matches (key prefix, object tags, object size) once that many days have passed since the
//! object's creation (S3 rounds up to the next midnight UTC, and queues the removal
//! asynchronously). An object overwritten or copied onto itself is a new object and starts again.
//! Nothing in the rule looks at who uses the object: a zip that a CloudFormation stack's
//! functions were deployed from expires like any other.
//!
//! moto stores lifecycle rules and never applies them. The local cloud's clock does not move by
//! itself either: a test advances it ([`Lifecycle::advance`], `POST /__sfstack/clock`), and each
//! advance applies every bucket's rules at the new time, as S3's daily run would. The midnight
//! rounding is left out; an advance of `Days + 1` expires what AWS would.

use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::Context;
use aws_sdk_s3::Client;
use aws_sdk_s3::types::{ExpirationStatus, LifecycleRule, Tag};

/// How far the local cloud's clock is ahead of the machine's, for lifecycle purposes.
#[derive(Default)]
pub struct Lifecycle {
    ahead_days: AtomicI64,
}

impl Lifecycle {
    /// Moves the clock `days` ahead and applies every bucket's expiration rules. Returns the
    /// objects removed, as `bucket/key`.
    pub async fn advance(&self, s3: &Client, days: i64) -> anyhow::Result<Vec<String>> {
        let ahead = self.ahead_days.fetch_add(days, Ordering::SeqCst) + days;
        let now = chrono::Utc::now() + chrono::Duration::days(ahead);
        let mut expired = Vec::new();
        let buckets = s3.list_buckets().send().await.context("listing buckets")?;
        for bucket in buckets.buckets().iter().filter_map(|bucket| bucket.name()) {
            let rules = match s3
                .get_bucket_lifecycle_configuration()
                .bucket(bucket)
                .send()
                .await
            {
                Ok(configuration) => configuration.rules().to_vec(),
                // NoSuchLifecycleConfiguration: nothing expires here.
                Err(_) => continue,
            };
            for rule in rules
                .iter()
                .filter(|rule| rule.status() == &ExpirationStatus::Enabled)
            {
                let Some(days) = rule.expiration().and_then(|expiration| expiration.days()) else {
                    continue;
                };
                let filter = Filter::of(rule);
                let mut token = None;
                loop {
                    let page = s3
                        .list_objects_v2()
                        .bucket(bucket)
                        .set_prefix(filter.prefix.clone())
                        .set_continuation_token(token.take())
                        .send()
                        .await
                        .with_context(|| format!("listing the objects of {bucket}"))?;
                    for object in page.contents() {
                        let (Some(key), Some(created)) = (object.key(), object.last_modified())
                        else {
                            continue;
                        };
                        let due = created.secs() + i64::from(days) * 86_400;
                        if due > now.timestamp() || !filter.sized(object.size().unwrap_or(0)) {
                            continue;
                        }
                        if !filter.tags.is_empty() {
                            let tagging = s3
                                .get_object_tagging()
                                .bucket(bucket)
                                .key(key)
                                .send()
                                .await
                                .with_context(|| format!("reading the tags of {bucket}/{key}"))?;
                            if !filter.tagged(tagging.tag_set()) {
                                continue;
                            }
                        }
                        s3.delete_object()
                            .bucket(bucket)
                            .key(key)
                            .send()
                            .await
                            .with_context(|| format!("expiring {bucket}/{key}"))?;
                        expired.push(format!("{bucket}/{key}"));
                    }
                    match page.next_continuation_token() {
                        Some(next) => token = Some(next.to_string()),
                        None => break,
                    }
                }
            }
        }
        Ok(expired)
    }
}

/// What a rule's filter asks of an object (its legacy top-level `Prefix` included).
#[derive(Debug, Default, PartialEq)]
struct Filter {
    prefix: Option<String>,
    tags: Vec<(String, String)>,
    larger_than: Option<i64>,
    smaller_than: Option<i64>,
}

impl Filter {
    fn of(rule: &LifecycleRule) -> Self {
        let pair = |tag: &Tag| (tag.key().to_string(), tag.value().to_string());
        #[allow(deprecated)]
        let legacy = rule.prefix().map(str::to_string);
        let Some(filter) = rule.filter() else {
            return Self {
                prefix: legacy,
                ..Self::default()
            };
        };
        if let Some(and) = filter.and() {
            return Self {
                prefix: and.prefix().map(str::to_string),
                tags: and.tags().iter().map(pair).collect(),
                larger_than: and.object_size_greater_than(),
                smaller_than: and.object_size_less_than(),
            };
        }
        Self {
            prefix: filter.prefix().map(str::to_string).or(legacy),
            tags: filter.tag().map(pair).into_iter().collect(),
            larger_than: filter.object_size_greater_than(),
            smaller_than: filter.object_size_less_than(),
        }
    }

    fn sized(&self, size: i64) -> bool {
        self.larger_than.is_none_or(|bound| size > bound)
            && self.smaller_than.is_none_or(|bound| size < bound)
    }

    fn tagged(&self, tags: &[Tag]) -> bool {
        self.tags.iter().all(|(key, value)| {
            tags.iter()
                .any(|tag| tag.key() == key && tag.value() == value)
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::types::{LifecycleExpiration, LifecycleRuleAndOperator, LifecycleRuleFilter};

    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag::builder().key(key).value(value).build().expect("a tag")
    }

    fn rule(filter: LifecycleRuleFilter) -> LifecycleRule {
        LifecycleRule::builder()
            .status(ExpirationStatus::Enabled)
            .expiration(LifecycleExpiration::builder().days(30).build())
            .filter(filter)
            .build()
            .expect("a rule")
    }

    #[test]
    fn a_filter_matches_prefix_tags_and_size() {
        let filter = Filter::of(&rule(
            LifecycleRuleFilter::builder()
                .and(
                    LifecycleRuleAndOperator::builder()
                        .prefix("logs/")
                        .tags(tag("retired", "true"))
                        .object_size_greater_than(10)
                        .build(),
                )
                .build(),
        ));
        assert_eq!(filter.prefix.as_deref(), Some("logs/"));
        assert!(filter.tagged(&[tag("retired", "true"), tag("other", "x")]));
        assert!(!filter.tagged(&[tag("retired", "false")]));
        assert!(filter.sized(11) && !filter.sized(10));
        let everything = Filter::of(&rule(LifecycleRuleFilter::builder().prefix("").build()));
        assert!(everything.tagged(&[]) && everything.sized(0));
    }
}

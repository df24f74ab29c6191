//! Who signed a request: the access key id and credential scope of AWS Signature Version 4,
//! from the `Authorization` header or (presigned URLs) the `X-Amz-Credential` query parameter.
//! The gateway does not check signatures (moto does not either); it only needs to know whose
//! key signed, as AWS does before it evaluates any policy.

/// The credential scope of a signed request: `AKID/DATE/REGION/SERVICE/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub region: String,
    pub service: String,
}

/// Reads the credential of a request, `None` when it is not signed with SigV4.
pub fn credential(authorization: Option<&str>, query: Option<&str>) -> Option<Credential> {
    if let Some(header) = authorization {
        let scope = header
            .strip_prefix("AWS4-HMAC-SHA256")?
            .split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix("Credential="))?;
        return parse_scope(scope);
    }
    let query = query?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "X-Amz-Credential")
        .and_then(|(_, scope)| parse_scope(&scope))
}

fn parse_scope(scope: &str) -> Option<Credential> {
    let mut parts = scope.split('/');
    let access_key_id = parts.next()?.to_string();
    let _date = parts.next()?;
    let region = parts.next()?.to_string();
    let service = parts.next()?.to_string();
    (parts.next() == Some("aws4_request") && !access_key_id.is_empty()).then_some(Credential {
        access_key_id,
        region,
        service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_the_key_region_and_service() {
        let header = "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261201/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            credential(Some(header), None),
            Some(Credential {
                access_key_id: "ASIAEXAMPLE".into(),
                region: "us-east-1".into(),
                service: "secretsmanager".into(),
            })
        );
    }

    #[test]
    fn a_presigned_url_names_them_in_the_query() {
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261201%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature=x";
        let found = credential(None, Some(query)).map(|credential| credential.service);
        assert_eq!(found.as_deref(), Some("s3"));
    }

    #[test]
    fn anything_else_is_unsigned() {
        assert_eq!(credential(Some("Bearer token"), None), None);
        assert_eq!(
            credential(Some("AWS4-HMAC-SHA256 Credential=short"), None),
            None
        );
        assert_eq!(credential(None, Some("a=b")), None);
        assert_eq!(credential(None, None), None);
    }
}

//! Salesforce record IDs: key prefixes, the 15→18 checksum, and ID generation.

const CHECKSUM_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The three checksum characters Salesforce appends to a 15-character ID.
///
/// Each 5-character chunk contributes one character: bit `i` (least significant bit
/// first) is set when the chunk's `i`-th character is an upper-case letter.
pub fn checksum(id15: &str) -> Option<String> {
    let bytes = id15.as_bytes();
    if bytes.len() != 15 || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let suffix = bytes
        .chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            char::from(CHECKSUM_ALPHABET[bits])
        })
        .collect();
    Some(suffix)
}

/// Why an ID was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdProblem {
    /// Not 15 or 18 alphanumeric characters.
    Shape,
    /// 18 characters whose last three do not match the first fifteen.
    Checksum,
}

/// Normalizes a 15- or 18-character ID to its 18-character form, checking the checksum.
pub fn to_18(id: &str) -> Result<String, IdProblem> {
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IdProblem::Shape);
    }
    match id.len() {
        15 => {
            let suffix = checksum(id).ok_or(IdProblem::Shape)?;
            Ok(format!("{id}{suffix}"))
        }
        18 => {
            let suffix = checksum(&id[..15]).ok_or(IdProblem::Shape)?;
            // The suffix is case-insensitive on input; Salesforce answers in upper case.
            if id[15..].eq_ignore_ascii_case(&suffix) {
                Ok(format!("{}{suffix}", &id[..15]))
            } else {
                Err(IdProblem::Checksum)
            }
        }
        _ => Err(IdProblem::Shape),
    }
}

/// Makes the `n`-th ID for a key prefix: prefix, a fixed pod marker, a base-62 counter,
/// then the checksum.
pub fn generate(key_prefix: &str, n: u64) -> String {
    // 3 (prefix) + 2 (pod "5g") + 10 (counter) = 15.
    let mut counter = [b'0'; 10];
    let mut value = n;
    for slot in counter.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    let id15 = format!(
        "{key_prefix}5g{}",
        std::str::from_utf8(&counter).unwrap_or("0000000000")
    );
    let suffix = checksum(&id15).unwrap_or_default();
    format!("{id15}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN_GOOD: &[(&str, &str)] = &[
        ("001D000000IqhSL", "001D000000IqhSLIAZ"),
        ("003RO0000035WQg", "003RO0000035WQgYAM"),
        ("00D36000001HDi3", "00D36000001HDi3EAG"),
        ("00536000002Pmoe", "00536000002PmoeAAC"),
        ("0013600000SWmOT", "0013600000SWmOTAA1"),
        ("a00B000000FSkcv", "a00B000000FSkcvIAD"),
        ("0017Q00000EZlby", "0017Q00000EZlbyQAD"),
        ("00558000001N0Ke", "00558000001N0KeAAK"),
    ];

    #[test]
    fn checksum_matches_known_good_pairs() {
        for (short, long) in KNOWN_GOOD {
            assert_eq!(to_18(short).as_deref(), Ok(*long), "{short}");
            assert_eq!(to_18(long).as_deref(), Ok(*long), "{long}");
        }
    }

    #[test]
    fn broken_checksum_is_rejected() {
        assert_eq!(to_18("a00B000000FSjVUIB1"), Err(IdProblem::Checksum));
        assert_eq!(to_18("001D000000IqhSLIAA"), Err(IdProblem::Checksum));
    }

    #[test]
    fn lower_case_checksum_is_accepted_and_normalized() {
        assert_eq!(
            to_18("001D000000IqhSLiaz").as_deref(),
            Ok("001D000000IqhSLIAZ")
        );
    }

    #[test]
    fn wrong_shapes_are_rejected() {
        for bad in [
            "",
            "001",
            "001D000000IqhS",
            "001D000000IqhSL-",
            "001D000000IqhSLIAZX",
            "001D000000Iqh'L",
        ] {
            assert_eq!(to_18(bad), Err(IdProblem::Shape), "{bad}");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = generate("003", 1);
        let b = generate("003", 2);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("003"));
        assert_ne!(a, b);
        assert_eq!(to_18(&a).as_deref(), Ok(a.as_str()));
        assert_eq!(to_18(&a[..15]).as_deref(), Ok(a.as_str()));
    }
}

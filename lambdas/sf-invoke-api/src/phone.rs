//! E.164 caller numbers to the national digits `phoneLookup` searches for.
//!
//! The original used libphonenumber's `national_number`. Its essential part for a number in
//! E.164 form is dropping the country calling code, whose length is fixed by the ITU
//! assignment: `1` (NANP) and `7` have one digit; the two-digit codes are listed in
//! [`TWO_DIGIT_CODES`]; every other code has three digits. Leading zeros of the remaining
//! digits are dropped too, as `national_number` (an integer) does, so `+39 06…` searches `6…`.

/// The two-digit country calling codes (ITU-T E.164 assignments). Every code that starts with
/// 1 or 7 has one digit; every code not listed here and not starting with 1 or 7 has three.
pub const TWO_DIGIT_CODES: &[&str] = &[
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// What to search for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneQuery {
    /// `anonymous` (any case) or empty: the caller withheld the number; nothing to search.
    Anonymous,
    /// National digits, e.g. `1122334455` for `+441122334455`.
    National(String),
}

/// Reads a caller number. `+` or `00` starts an international number whose country code is
/// dropped; a number without either is taken to be national already. Spaces, dashes, dots,
/// slashes and parentheses are ignored; anything else is an error.
pub fn national_number(input: &str) -> Result<PhoneQuery, String> {
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("anonymous") {
        return Ok(PhoneQuery::Anonymous);
    }
    let (international, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let mut digits = String::with_capacity(rest.len());
    for character in rest.chars() {
        match character {
            '0'..='9' => digits.push(character),
            ' ' | '-' | '.' | '/' | '(' | ')' => {}
            _ => {
                return Err(
                    "expected an E.164 number such as +441122334455, or anonymous".to_owned(),
                );
            }
        }
    }
    let (international, digits) = match digits.strip_prefix("00") {
        Some(rest) if !international => (true, rest.to_owned()),
        _ => (international, digits),
    };
    if digits.len() > 15 {
        return Err("phone numbers have at most 15 digits (E.164)".to_owned());
    }
    let national = if international {
        let code_length = calling_code_length(&digits);
        digits.get(code_length..).unwrap_or_default()
    } else {
        digits.as_str()
    };
    let national = national.trim_start_matches('0');
    if national.len() < 4 {
        return Err("the number is too short to search for".to_owned());
    }
    Ok(PhoneQuery::National(national.to_owned()))
}

/// The length of the country calling code `digits` starts with.
pub fn calling_code_length(digits: &str) -> usize {
    match digits.as_bytes().first() {
        Some(b'1' | b'7') => 1,
        _ => match digits.get(..2) {
            Some(prefix) if TWO_DIGIT_CODES.contains(&prefix) => 2,
            _ => 3,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_lose_their_country_code() {
        let national = |digits: &str| Ok(PhoneQuery::National(digits.to_owned()));
        let cases = [
            ("+441122334455", national("1122334455")),
            ("+44 11 2233 4455", national("1122334455")),
            ("+15555550100", national("5555550100")),
            ("+1 (555) 555-0100", national("5555550100")),
            ("+33612345678", national("612345678")),
            ("+390612345678", national("612345678")),
            ("+353861234567", national("861234567")),
            ("+8613812345678", national("13812345678")),
            ("+85291234567", national("91234567")),
            ("+79161234567", national("9161234567")),
            ("+27821234567", national("821234567")),
            ("+2348031234567", national("8031234567")),
            ("+9715012345678", national("5012345678")),
            ("00441122334455", national("1122334455")),
            ("5555550100", national("5555550100")),
            ("anonymous", Ok(PhoneQuery::Anonymous)),
            ("Anonymous", Ok(PhoneQuery::Anonymous)),
            ("ANONYMOUS", Ok(PhoneQuery::Anonymous)),
            ("", Ok(PhoneQuery::Anonymous)),
            ("   ", Ok(PhoneQuery::Anonymous)),
        ];
        for (input, expected) in cases {
            assert_eq!(national_number(input), expected, "{input}");
        }
    }

    #[test]
    fn non_numbers_are_rejected() {
        let cases = [
            "+44' OR Name != '",
            "+44*",
            "restricted",
            "+1",
            "+44 12",
            "+1234567890123456",
            "+44}{",
        ];
        for input in cases {
            assert!(national_number(input).is_err(), "{input}");
        }
    }

    #[test]
    fn calling_code_lengths_follow_the_itu_zones() {
        let cases = [
            ("1555", 1),
            ("7916", 1),
            ("44", 2),
            ("20", 2),
            ("212", 3),
            ("353", 3),
            ("852", 3),
            ("86", 2),
            ("971", 3),
            ("98", 2),
            ("", 3),
        ];
        for (digits, expected) in cases {
            assert_eq!(calling_code_length(digits), expected, "{digits}");
        }
    }
}

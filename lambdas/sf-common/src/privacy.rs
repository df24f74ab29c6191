//! Personal data kept out of logs and out of the answers a caller sees: phone numbers and
//! WhatsApp ids (which are phone numbers) are shown by their last two digits only, enough to
//! tell two callers apart in an incident, not enough to call anyone.

/// The fewest digits a run needs to be taken for a phone number (E.164 numbers have 8 to 15;
/// 7 catches local numbers too).
const PHONE_DIGITS: usize = 7;

/// `value` with every character but the last two replaced by `*`.
pub fn mask_identifier(value: &str) -> String {
    let count = value.chars().count();
    value
        .chars()
        .enumerate()
        .map(|(index, c)| if index + 2 < count { '*' } else { c })
        .collect()
}

/// `text` with every phone-number-like run masked: digits with the separators people write
/// (`+`, space, `-`, `.`, parentheses), at least [`PHONE_DIGITS`] digits long, standing apart
/// from letters (so Salesforce record ids and other codes stay readable). All but the run's
/// last two digits become `*`.
pub fn mask_phone_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = chars.clone();
    let is_part = |c: char| c.is_ascii_digit() || "+ -.()".contains(c);
    let mut start = 0;
    while start < chars.len() {
        if !chars[start].is_ascii_digit() && chars[start] != '+' && chars[start] != '(' {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < chars.len() && is_part(chars[end]) {
            end += 1;
        }
        // Trim trailing separators: the run ends on its last digit.
        let mut last = end;
        while last > start && !chars[last - 1].is_ascii_digit() {
            last -= 1;
        }
        let digits = chars[start..last]
            .iter()
            .filter(|c| c.is_ascii_digit())
            .count();
        let apart = (start == 0 || !chars[start - 1].is_alphanumeric())
            && (last == chars.len() || !chars[last].is_alphanumeric());
        let run: String = chars[start..last].iter().collect();
        if digits >= PHONE_DIGITS && apart && !is_date(&run) {
            let mut seen = 0;
            for index in start..last {
                if chars[index].is_ascii_digit() {
                    seen += 1;
                    if seen + 2 <= digits {
                        out[index] = '*';
                    }
                }
            }
        }
        start = end.max(start + 1);
    }
    out.into_iter().collect()
}

/// `YYYY-MM-DD`: a date, not a number to hide.
fn is_date(run: &str) -> bool {
    let groups: Vec<&str> = run.split('-').collect();
    groups.len() == 3
        && [4, 2, 2]
            .iter()
            .zip(&groups)
            .all(|(len, group)| group.len() == *len && group.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_keep_their_last_two_characters() {
        assert_eq!(mask_identifier("15551234567"), "*********67");
        assert_eq!(mask_identifier("42"), "42");
        assert_eq!(mask_identifier(""), "");
    }

    #[test]
    fn phone_numbers_are_masked_wherever_they_appear_and_ids_are_not() {
        assert_eq!(
            mask_phone_numbers("no contact with Phone = '+1 (555) 123-4567'"),
            "no contact with Phone = '+* (***) ***-**67'"
        );
        assert_eq!(mask_phone_numbers("wa 447700900123."), "wa **********23.");
        // A record id, a short number and a date stay as they are.
        for kept in [
            "record 5003000000D8cuIAAR",
            "HTTP 404 after 3 tries",
            "2026-12-01",
            "id 0015000000VALDtAAP",
        ] {
            assert_eq!(mask_phone_numbers(kept), kept);
        }
    }
}

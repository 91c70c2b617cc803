//! Client identifier patterns (`client_id_patterns`): `%u` stands for the user name, taken
//! literally, and `*` for any run of characters.

/// Whether `client_id` matches one of `patterns` (`%u`: the user name, taken literally;
/// `*`: any run of characters). A pattern with `%u` never matches a client without a user
/// name, and a `*` inside the user name is a plain character, not a wildcard.
pub(crate) fn client_id_allowed(
    patterns: &[String],
    client_id: &str,
    username: Option<&str>,
) -> bool {
    patterns.iter().any(|pattern| {
        let mut tokens = Vec::new();
        for (i, piece) in pattern.split("%u").enumerate() {
            if i > 0 {
                match username {
                    Some(name) => tokens.push(GlobToken::Literal(name)),
                    None => return false,
                }
            }
            for (j, literal) in piece.split('*').enumerate() {
                if j > 0 {
                    tokens.push(GlobToken::Star);
                }
                if !literal.is_empty() {
                    tokens.push(GlobToken::Literal(literal));
                }
            }
        }
        glob_matches(&tokens, client_id)
    })
}

/// A piece of a client identifier pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GlobToken<'a> {
    /// Exactly these characters.
    Literal(&'a str),
    /// Any run of characters.
    Star,
}

/// Matches `text` against literals and stars, iteratively (no backtracking blow-up: each star
/// retries by moving the literal after it along, in at most `text.len()` steps per star).
fn glob_matches(tokens: &[GlobToken<'_>], text: &str) -> bool {
    let text = text.as_bytes();
    let (mut ti, mut ki) = (0usize, 0usize);
    // The last star seen: the token after it, and where in the text it was tried.
    let mut star: Option<(usize, usize)> = None;
    loop {
        match tokens.get(ki) {
            Some(GlobToken::Star) => {
                ki += 1;
                star = Some((ki, ti));
                continue;
            }
            Some(GlobToken::Literal(lit)) if text[ti..].starts_with(lit.as_bytes()) => {
                ti += lit.len();
                ki += 1;
                continue;
            }
            None if ti == text.len() => return true,
            _ => {}
        }
        match star {
            Some((after, tried)) if tried < text.len() => {
                star = Some((after, tried + 1));
                ki = after;
                ti = tried + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_patterns_substitute_the_user_name() {
        let patterns = vec!["%u".to_owned(), "%u-*".to_owned()];
        assert!(client_id_allowed(&patterns, "alice", Some("alice")));
        assert!(client_id_allowed(&patterns, "alice-phone", Some("alice")));
        assert!(!client_id_allowed(&patterns, "bob-phone", Some("alice")));
        assert!(!client_id_allowed(&patterns, "alice", None));
        let stars = |p: &str, t: &str| client_id_allowed(&[p.to_owned()], t, None);
        assert!(stars("a*b*c", "axxbyyc"));
        assert!(stars("*", ""));
        assert!(stars("a**", "a"));
        assert!(!stars("a*b", "ab-"));
        assert!(stars("*b", "abab"));
    }

    #[test]
    fn a_star_in_the_user_name_is_not_a_wildcard() {
        let patterns = vec!["%u".to_owned(), "%u-*".to_owned()];
        assert!(!client_id_allowed(&patterns, "anything", Some("*")));
        assert!(!client_id_allowed(&patterns, "bob-phone", Some("*")));
        assert!(client_id_allowed(&patterns, "*", Some("*")));
        assert!(client_id_allowed(&patterns, "*-x", Some("*")));
        assert!(!client_id_allowed(&patterns, "a-b", Some("a*")));
    }
}

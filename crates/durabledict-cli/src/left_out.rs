//! What a command that reads every entry (`list`, `watch`) leaves out, told on stderr: keys
//! whose value does not decode, and names that are not keys. One of them never hides the
//! others (a value a Python program wrote under `b'\xff'` used to make `list` fail).

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The entries reported so far, so that `watch` tells each once (and again only after it was
/// gone).
#[derive(Debug, Default)]
pub(crate) struct LeftOut {
    told: BTreeSet<String>,
}

impl LeftOut {
    /// Prints on stderr, prefixed by `command`, every left-out entry not told before.
    pub(crate) fn tell(
        &mut self,
        command: &str,
        undecodable: &[(String, String)],
        unreadable: &[(Vec<u8>, String)],
    ) {
        let lines: BTreeSet<String> = lines(undecodable, unreadable).collect();
        for line in lines.difference(&self.told) {
            eprintln!("durabledict: {command}: {line}");
        }
        self.told = lines;
    }
}

/// One line per left-out entry, each saying how to address it.
fn lines<'a>(
    undecodable: &'a [(String, String)],
    unreadable: &'a [(Vec<u8>, String)],
) -> impl Iterator<Item = String> + 'a {
    let undecodable = undecodable.iter().map(|(key, error)| {
        format!("left out key {key:?}: its stored value does not decode: {error}")
    });
    let unreadable = unreadable.iter().map(|(name, reason)| {
        let b64 = STANDARD.encode(name);
        format!(
            "left out an entry whose name is not a key ({reason}); \
             its name in base64 is {b64} (get or del it with --key-base64 {b64})"
        )
    });
    undecodable.chain(unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_key_or_the_raw_name_in_base64() {
        let undecodable = [("k".to_string(), "bad pickle".to_string())];
        let unreadable = [(vec![0xff], "not UTF-8".to_string())];
        let lines: Vec<String> = lines(&undecodable, &unreadable).collect();
        assert_eq!(
            lines,
            [
                "left out key \"k\": its stored value does not decode: bad pickle",
                "left out an entry whose name is not a key (not UTF-8); its name in base64 \
                 is /w== (get or del it with --key-base64 /w==)",
            ]
        );
    }
}

//! Entry points shared by the `index` and `signed_index` fuzz targets and the corpus tests.
//! Not stable API.

/// Parse arbitrary bytes as a store index. Never panics.
pub fn index(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(index) = crate::Index::parse(text, "fuzz") {
            let _ = index.search("a").count();
            let _ = index.find("a");
        }
    }
}

/// Arbitrary bytes as a signed index: the part before the first newline-NUL-newline
/// (`"\n\0\n"`) as a signature file, the rest as the index it signs (no separator: no
/// signature file). Never panics, and never accepts an index no key signed.
pub fn signed_index(data: &[u8]) {
    let (signature, index) = match data.windows(3).position(|w| w == b"\n\0\n") {
        Some(at) => (Some(&data[..at]), &data[at + 3..]),
        None => (None, data),
    };
    if let Some(signature) = signature {
        if let Ok(parsed) = crate::Signature::parse(signature, "fuzz") {
            let _ = parsed.to_json();
            let _ = parsed.key.fingerprint();
        }
    }
    if let Ok(signed) = crate::SignedIndex::verify(index, signature, "fuzz") {
        // Whatever passed did verify: check it again the long way.
        let parsed = signature.and_then(|s| crate::Signature::parse(s, "fuzz").ok());
        assert!(
            parsed.is_some_and(|p| p.key == signed.key && p.key.verifies(index, &p.signature)),
            "an index passed without a valid signature"
        );
    }
}

//! Entry point shared by the `index` fuzz target and the corpus test. Not stable API.

/// Parse arbitrary bytes as a store index. Never panics.
pub fn index(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(index) = crate::Index::parse(text, "fuzz") {
            let _ = index.search("a").count();
            let _ = index.find("a");
        }
    }
}

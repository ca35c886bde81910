//! Rebuilds the crate when a migration is added: `refinery::embed_migrations!` reads the
//! `migrations` folder at compile time, and Cargo does not watch a folder for new files
//! unless told to.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

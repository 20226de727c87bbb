// refinery's embed_migrations! reads ../migrations at compile time, but cargo only knows to
// recompile this crate when one of its own sources changes: a new migration file would not be
// embedded until something else touched the crate. Watching the directory (its listing changes
// when a file is added) and each file fixes that.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    if let Ok(entries) = std::fs::read_dir("../migrations") {
        for entry in entries.flatten() {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
}

//! `#[setup]`: blocking or `async`, fallible or not; registered and still callable.
use intralb::setup;

#[setup]
fn create_tables() -> Result<(), std::io::Error> {
    Ok(())
}

#[setup]
async fn migrate() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}

#[setup]
async fn warm_up() {}

#[setup(crate = "intralb")]
fn nothing() {}

fn main() {
    let _ = (create_tables, migrate, warm_up, nothing);
}

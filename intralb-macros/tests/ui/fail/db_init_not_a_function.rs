// `#[db_init]` goes on a function.
#[intralb::db_init]
struct Connection;

#[intralb::db_init]
static POOL: u8 = 0;

fn main() {
    let _ = (Connection, POOL);
}

// An initializer cannot be generic: nothing would choose its parameters.
use intralb::{db_init, WorkerId};

#[db_init]
fn open<T: Default>(_: WorkerId) -> T {
    T::default()
}

#[db_init]
fn open_where<'a>(_: WorkerId) -> &'a str
where
    'a: 'static,
{
    ""
}

fn main() {
    let _ = open::<u8>;
    let _ = open_where;
}

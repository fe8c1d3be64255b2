// `#[balanced]` goes on the function that builds the router.
#[intralb::balanced]
struct App;

fn main() {
    let _ = App;
}

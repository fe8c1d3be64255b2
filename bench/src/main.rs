//! intralb's benchmark harness (see `BENCHMARKS.md`).
//!
//! One binary plays two parts, so that `cargo run --release -p intralb-bench -- all` builds all
//! a run needs and every server runs in a process of its own:
//!
//! - **the driver** (`bench [SCENARIO…]`, [`driver`]): for each scenario and opponent it starts
//!   `bench server …` as a child process (pinned to one core), drives it with `oha`, reads the
//!   server's RSS and CPU time from `/proc`, and writes `results.json`, `report.md` and the chart;
//! - **a server** (`bench server --opponent …`, [`server`]): bare hyper, axum + tower, or
//!   intralb, serving the same axum `Router` until SIGTERM;
//! - **a load generator** (`bench load …`, [`load`]) for the loads `oha` cannot shape: bursts,
//!   and two classes of requests.

mod cli;
mod driver;
mod load;
mod server;

use std::process::ExitCode;

use cli::Command;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(&args) {
        Ok(Command::Run(options)) => driver::main(options),
        Ok(Command::Report(out)) => driver::rerender(&out),
        Ok(Command::Server(options)) => server::main(options),
        Ok(Command::Load(options)) => load::main(options),
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench: {error}\n\n{}", cli::USAGE);
            ExitCode::from(2)
        }
    }
}

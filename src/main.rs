//! The `perfgate` command line: a thin shell over the library (`src/cli`).

fn main() -> std::process::ExitCode {
    perfgate::cli::main()
}

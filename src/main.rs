//! The `perfgate` command line: a thin shell over the library (`src/cli`).

/// Planning a large list allocates and frees millions of small strings; glibc's malloc spent
/// about a third of `perfgate dev bench-names` consolidating and unlinking chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    perfgate::cli::main()
}

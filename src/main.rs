//! The `mqscope` binary: everything lives in the library; see `mqscope::cli`.
fn main() -> std::process::ExitCode {
    mqscope::cli::main()
}

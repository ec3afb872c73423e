//! The `mqscope` binary: everything lives in the library; see `mqscope::cli`.
fn main() -> std::process::ExitCode {
    mqscope::hugepages::reexec_with_huge_pages();
    mqscope::cli::main()
}

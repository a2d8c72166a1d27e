//! `rlm-rust`: the operator's command line (all logic in `rlm_rust::cli`).

fn main() -> std::process::ExitCode {
    rlm_rust::cli::main()
}

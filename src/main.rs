fn main() -> std::process::ExitCode {
    shelfwatch::cli::main()
}

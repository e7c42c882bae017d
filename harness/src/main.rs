//! The `keda-conformance` command: parses arguments and hands over to the library.

fn main() {
    std::process::exit(keda_conformance::cli::main());
}

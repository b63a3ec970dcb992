//! The `bitrouter` binary: parse the command line and run the verb.

fn main() {
    std::process::exit(bitrouter_proxy::cli::main());
}

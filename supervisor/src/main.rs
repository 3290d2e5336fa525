fn main() {
    std::process::exit(berth_supervisor::cli::main());
}

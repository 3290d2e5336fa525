//! `berth-logger`: the logging binary a shim runs for each container (`binary://…/berth-logger
//! ?log-driver=json-file&--path=FILE[&--max-size=N&--max-file=N]`), the process's stdout on
//! fd 3, stderr on fd 4, ready on fd 5. A binary of its own, without the CLI: one runs per
//! container for its whole life, and the full `berth` binary costs ~2 MiB of private memory
//! each (its relocated data and the CLI's parsing), this one a fraction of it.
use std::path::PathBuf;

use berth_supervisor::containers::logs::{run_writer, Rotation};

fn parse(args: &[String]) -> Result<(PathBuf, Rotation), String> {
    let mut rest = args.iter();
    match (
        rest.next().map(String::as_str),
        rest.next().map(String::as_str),
    ) {
        (Some("log-driver"), Some("json-file")) => {}
        (Some("log-driver"), Some(other)) => {
            return Err(format!("unknown driver {other:?} (json-file)"))
        }
        _ => return Err(
            "usage: berth-logger log-driver json-file --path FILE [--max-size N] [--max-file N]"
                .into(),
        ),
    }
    let mut path = None;
    let mut rotation = Rotation::default();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag}: no value"))?;
        let number = |what: &str| -> Result<u64, String> {
            value
                .parse()
                .map_err(|_| format!("{what} {value:?}: not a number"))
        };
        match flag.as_str() {
            "--path" => path = Some(PathBuf::from(value)),
            "--max-size" => rotation.max_size = number("--max-size")?,
            "--max-file" => {
                rotation.max_file = number("--max-file")?.clamp(1, u32::MAX as u64) as u32
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok((path.ok_or("--path is required")?, rotation))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match parse(&args) {
        Ok((path, rotation)) => match run_writer(&path, rotation) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth-logger: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("berth-logger: {e}");
            2
        }
    };
    std::process::exit(code);
}

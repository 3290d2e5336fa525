//! `version`, `info`: the daemon's JSON, pretty-printed.
use super::Context;

fn print_json(ctx: &Context, path: &str) -> anyhow::Result<()> {
    let value = ctx.client.get(path)?.json()?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

pub fn version(ctx: &Context) -> anyhow::Result<()> {
    print_json(ctx, "/version")
}

pub fn info(ctx: &Context) -> anyhow::Result<()> {
    print_json(ctx, "/info")
}

//! Prints the README's configuration table from `ENV_VARS`:
//! `cargo run -q -p longhaul-jobs --example print_env_table`.

fn main() {
    print!("{}", longhaul_jobs::config::env_table_markdown());
}

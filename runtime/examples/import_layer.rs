//! Imports one layer blob (plain, gzip or zstd tar) into an image store and prints what it
//! unpacked: the unit of work `bench/unpack.sh` times against `gzip -dc | tar -x` and
//! `zstd -dc | tar -x`. Usage: `import_layer STORE_DIR LAYER_FILE`.

use std::fs::File;
use std::process::ExitCode;

use runtime::image::Store;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, store, file] = args.as_slice() else {
        eprintln!("usage: import_layer STORE_DIR LAYER_FILE");
        return ExitCode::from(2);
    };
    let result = File::open(file)
        .map_err(|e| format!("{file}: {e}"))
        .and_then(|f| {
            Store::open(store)
                .and_then(|s| s.import_layer(f, None, None))
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(layer) => {
            println!(
                "{} {} files, {} bytes",
                layer.diff_id, layer.stats.files, layer.stats.bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("import_layer: {e}");
            ExitCode::FAILURE
        }
    }
}

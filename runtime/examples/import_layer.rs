//! Unpacks one layer blob (plain, gzip or zstd tar) the two ways `bench/unpack.sh` times against
//! `gzip -dc | tar -x` and `zstd -dc | tar -x`:
//! - `import_layer STORE_DIR LAYER_FILE`: the whole import into an image store (blob stored and
//!   fsynced, two sha256, two threads), what `load` and `import` do per layer;
//! - `import_layer --unpack-only DEST_DIR LAYER_FILE`: decompression and the safe unpacker alone,
//!   on one thread.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::process::ExitCode;

use runtime::image::{unpack_layer, Compression, Store};

fn unpack_only(dest: &str, file: &str) -> Result<String, String> {
    let mut input =
        BufReader::with_capacity(256 << 10, File::open(file).map_err(|e| e.to_string())?);
    let mut magic = [0u8; 6];
    input.read_exact(&mut magic).map_err(|e| e.to_string())?;
    let compression = Compression::detect(&magic).map_err(|e| e.to_string())?;
    let input = BufReader::with_capacity(256 << 10, (&magic[..]).chain(input));
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(|e| e.to_string())?)
        }
    };
    let stats = unpack_layer(reader, Path::new(dest)).map_err(|e| e.to_string())?;
    Ok(format!("{} files, {} bytes", stats.files, stats.bytes))
}

fn import(store: &str, file: &str) -> Result<String, String> {
    let f = File::open(file).map_err(|e| format!("{file}: {e}"))?;
    let layer = Store::open(store)
        .and_then(|s| s.import_layer(f, None, None))
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{} {} files, {} bytes",
        layer.diff_id, layer.stats.files, layer.stats.bytes
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.as_slice() {
        [_, flag, dest, file] if flag == "--unpack-only" => unpack_only(dest, file),
        [_, store, file] => import(store, file),
        _ => {
            eprintln!("usage: import_layer [--unpack-only DEST_DIR | STORE_DIR] LAYER_FILE");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("import_layer: {e}");
            ExitCode::FAILURE
        }
    }
}

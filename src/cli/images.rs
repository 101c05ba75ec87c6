//! `berth import` (a root filesystem tarball streamed as the upload body of one request) and
//! `berth images`.

use anyhow::{Context, Result};
use clap::Args;
use protocol::messages::{ImageSummary, ImportImage, Request, Response};
use serde_json::json;

use super::client::{unexpected, wire, Client};
use super::output::{self, now_secs};
use super::parse;

/// `berth import`.
#[derive(Args, Debug)]
pub struct ImportCmd {
    /// Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, WORKDIR, USER, ...).
    #[arg(short = 'c', long = "change")]
    changes: Vec<String>,
    /// Commit message.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Accepted for compatibility.
    #[arg(long, hide = true)]
    platform: Option<String>,
    /// Tarball (plain or gzip), or - for stdin.
    source: String,
    /// NAME[:TAG] for the image.
    reference: Option<String>,
}

/// `berth images`.
#[derive(Args, Debug)]
pub struct ImagesCmd {
    /// Include intermediate images.
    #[arg(short = 'a', long)]
    all: bool,
    /// Only ids.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Do not truncate ids.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Filters.
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// table (default) or json.
    #[arg(long)]
    format: Option<String>,
    /// Only this repository[:tag].
    repository: Option<String>,
}

/// `berth import`: streams the file (or stdin) to the node as the request body.
pub async fn import(client: &Client, cmd: ImportCmd) -> Result<i32> {
    let mut req = ImportImage {
        reference: cmd.reference.clone(),
        changes: cmd.changes.clone(),
        message: cmd.message.clone(),
        size: None,
    };
    let answer = if cmd.source == "-" {
        let mut stdin = tokio::io::stdin();
        client
            .peer
            .request_upload(&Request::ImportImage(req), &mut stdin)
            .await
    } else {
        let mut file = tokio::fs::File::open(&cmd.source)
            .await
            .with_context(|| format!("cannot open {}", cmd.source))?;
        req.size = file.metadata().await.ok().map(|m| m.len());
        client
            .peer
            .request_upload(&Request::ImportImage(req), &mut file)
            .await
    };
    match answer.map_err(wire)? {
        Response::ImageImported { id, .. } => {
            println!("{id}");
            Ok(0)
        }
        other => Err(unexpected("import", &other)),
    }
}

/// Splits `name:tag` at the tag's colon (not a registry port's).
fn split_ref(r: &str) -> (String, String) {
    match r.rfind(':') {
        Some(i) if !r[i + 1..].contains('/') => (r[..i].to_string(), r[i + 1..].to_string()),
        _ => (r.to_string(), "latest".to_string()),
    }
}

/// Rows of `images`: one per tag, `<none>` for untagged images.
pub fn image_rows(images: &[ImageSummary], no_trunc: bool, now: i64) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for i in images {
        let id = if no_trunc {
            i.id.clone()
        } else {
            output::short_id(&i.id)
        };
        let created = output::ago(i.created, now);
        let size = output::human_size(i.size);
        let tags: Vec<(String, String)> = if i.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.repo_tags.iter().map(|t| split_ref(t)).collect()
        };
        for (repo, tag) in tags {
            rows.push(vec![repo, tag, id.clone(), created.clone(), size.clone()]);
        }
    }
    rows
}

/// `berth images`.
pub async fn images(client: &Client, cmd: ImagesCmd) -> Result<i32> {
    let mut filters = parse::parse_filters(&cmd.filter)?;
    if let Some(r) = &cmd.repository {
        filters
            .entry("reference".into())
            .or_default()
            .push(r.clone());
    }
    let mut images = match client
        .call(&Request::ListImages {
            all: cmd.all,
            filters,
        })
        .await?
    {
        Response::Images(v) => v,
        other => return Err(unexpected("images", &other)),
    };
    images.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    let now = now_secs();
    let mut s = String::new();
    if cmd.quiet {
        let mut seen = std::collections::HashSet::new();
        for i in &images {
            let id = if cmd.no_trunc {
                i.id.clone()
            } else {
                output::short_id(&i.id)
            };
            if seen.insert(id.clone()) {
                s.push_str(&id);
                s.push('\n');
            }
        }
    } else {
        match cmd.format.as_deref() {
            None | Some("table") => {
                s = output::table(
                    &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
                    &image_rows(&images, cmd.no_trunc, now),
                );
            }
            Some("json") => {
                for row in image_rows(&images, cmd.no_trunc, now) {
                    let o = json!({
                        "Repository": row[0], "Tag": row[1], "ID": row[2],
                        "CreatedSince": row[3], "Size": row[4],
                    });
                    s.push_str(&o.to_string());
                    s.push('\n');
                }
            }
            Some(f) => anyhow::bail!("images --format {f:?} is not supported: use table or json"),
        }
    }
    output::print(&s);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn rows_per_tag() {
        let img = ImageSummary {
            id: format!("sha256:{}", "ab".repeat(32)),
            repo_tags: vec!["busybox:latest".into(), "localhost:5000/bb:1".into()],
            repo_digests: vec![],
            created: 100,
            size: 4_264_000,
            labels: BTreeMap::new(),
            node: "n".into(),
        };
        let rows = image_rows(&[img], false, 105);
        assert_eq!(
            rows[0],
            vec![
                "busybox",
                "latest",
                "abababababab",
                "5 seconds ago",
                "4.26MB"
            ]
        );
        assert_eq!(rows[1][0], "localhost:5000/bb");
        assert_eq!(rows[1][1], "1");
        assert_eq!(split_ref("localhost:5000/x").1, "latest");
    }
}

//! Image verbs: `import` (a root filesystem tarball streamed as the upload body of one request),
//! `images`, `load` / `save` (archives up and down), `rmi`, `tag`, `image inspect`, `history`,
//! `image prune`, and the `berth image …` group that names them all.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use protocol::messages::{
    HistoryEntry, ImageDeleted, ImageInspect, ImageSummary, ImportImage, Request, Response,
};
use serde_json::json;

use super::client::{unexpected, wire, Client};
use super::output::{self, now_secs};
use super::parse;
use super::report_error;
use super::transfer::{self, Sink};

// `berth import`.
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

// `berth images`.
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

// `berth load`.
#[derive(Args, Debug)]
pub struct LoadCmd {
    /// Read from a tar archive file instead of stdin.
    #[arg(short = 'i', long)]
    input: Option<String>,
    /// Suppress the load output.
    #[arg(short = 'q', long)]
    quiet: bool,
}

// `berth save`.
#[derive(Args, Debug)]
pub struct SaveCmd {
    /// Write to a file instead of stdout.
    #[arg(short = 'o', long)]
    output: Option<String>,
    /// Images (references or ids).
    #[arg(required = true)]
    images: Vec<String>,
}

// `berth rmi`.
#[derive(Args, Debug)]
pub struct RmiCmd {
    /// Remove even when in use or referenced by several names.
    #[arg(short = 'f', long)]
    force: bool,
    /// Accepted for compatibility.
    #[arg(long = "no-prune")]
    no_prune: bool,
    /// Images (references or ids).
    #[arg(required = true)]
    images: Vec<String>,
}

// `berth tag`.
#[derive(Args, Debug)]
pub struct TagCmd {
    /// SOURCE_IMAGE[:TAG] or id.
    source: String,
    /// TARGET_IMAGE[:TAG].
    target: String,
}

// `berth image inspect`.
#[derive(Args, Debug)]
pub struct ImageInspectCmd {
    /// json (default) or a Go-style template such as {{.Id}}.
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Images (references or ids).
    #[arg(required = true)]
    images: Vec<String>,
}

// `berth history`.
#[derive(Args, Debug)]
pub struct HistoryCmd {
    /// Print sizes and dates in human-readable form.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    human: bool,
    /// Do not truncate output.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only image ids.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// table (default) or json.
    #[arg(long)]
    format: Option<String>,
    /// The image.
    image: String,
}

// `berth image prune`.
#[derive(Args, Debug)]
pub struct ImagePruneCmd {
    /// Remove all images no container uses, not just dangling ones.
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
    /// Filters.
    #[arg(long = "filter")]
    filter: Vec<String>,
}

/// `berth image …`.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ImageCommand {
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesCmd),
    /// Remove images.
    #[command(alias = "remove")]
    Rm(RmiCmd),
    /// Add a name to an image.
    Tag(TagCmd),
    /// Load images from an archive.
    Load(LoadCmd),
    /// Save images to an archive.
    Save(SaveCmd),
    /// The history of an image.
    History(HistoryCmd),
    /// Details of images in JSON.
    Inspect(ImageInspectCmd),
    /// Remove unused images.
    Prune(ImagePruneCmd),
    /// Make an image from a root filesystem tarball.
    Import(ImportCmd),
}

/// `berth image …`.
pub async fn image(client: &Client, cmd: ImageCommand) -> Result<i32> {
    match cmd {
        ImageCommand::Ls(c) => images(client, c).await,
        ImageCommand::Rm(c) => rmi(client, c).await,
        ImageCommand::Tag(c) => tag(client, c).await,
        ImageCommand::Load(c) => load(client, c).await,
        ImageCommand::Save(c) => save(client, c).await,
        ImageCommand::History(c) => history(client, c).await,
        ImageCommand::Inspect(c) => inspect(client, c).await,
        ImageCommand::Prune(c) => prune(client, c).await,
        ImageCommand::Import(c) => import(client, c).await,
    }
}

/// `berth load`: the archive (file or stdin) is the request body.
pub async fn load(client: &Client, cmd: LoadCmd) -> Result<i32> {
    let answer = match &cmd.input {
        Some(path) if path != "-" => {
            let mut file = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {path}"))?;
            client
                .peer()
                .await?
                .request_upload(&Request::LoadImage, &mut file)
                .await
        }
        _ => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty: use -i FILE or redirect");
            }
            client
                .peer()
                .await?
                .request_upload(&Request::LoadImage, &mut tokio::io::stdin())
                .await
        }
    };
    match answer.map_err(wire)? {
        Response::ImagesLoaded(images) => {
            if !cmd.quiet {
                let mut s = String::new();
                for i in images {
                    if i.repo_tags.is_empty() {
                        s.push_str(&format!("Loaded image ID: {}\n", i.id));
                    }
                    for t in i.repo_tags {
                        s.push_str(&format!("Loaded image: {t}\n"));
                    }
                }
                output::print(&s);
            }
            Ok(0)
        }
        other => Err(unexpected("load", &other)),
    }
}

/// `berth save`.
pub async fn save(client: &Client, cmd: SaveCmd) -> Result<i32> {
    let req = Request::SaveImages { images: cmd.images };
    transfer::download(
        client,
        &req,
        Sink::from_option(cmd.output.as_deref()),
        "archive",
    )
    .await?;
    Ok(0)
}

fn deleted_lines(items: &[ImageDeleted], capitalised: bool) -> Vec<String> {
    items
        .iter()
        .map(|i| match (i, capitalised) {
            (ImageDeleted::Untagged(r), true) => format!("Untagged: {r}"),
            (ImageDeleted::Deleted(d), true) => format!("Deleted: {d}"),
            (ImageDeleted::Untagged(r), false) => format!("untagged: {r}"),
            (ImageDeleted::Deleted(d), false) => format!("deleted: {d}"),
        })
        .collect()
}

/// `berth rmi`: each image in turn; failures are reported and the rest still removed.
pub async fn rmi(client: &Client, cmd: RmiCmd) -> Result<i32> {
    let _ = cmd.no_prune;
    let mut code = 0;
    for image in cmd.images {
        let req = Request::RemoveImage {
            image,
            force: cmd.force,
        };
        match client.call(&req).await {
            Ok(Response::ImagesDeleted { items, .. }) => {
                let mut s = deleted_lines(&items, true).join("\n");
                s.push('\n');
                output::print(&s);
            }
            Ok(other) => code = report_error(&unexpected("rmi", &other)),
            Err(e) => code = report_error(&e),
        }
    }
    Ok(code)
}

/// `berth tag`.
pub async fn tag(client: &Client, cmd: TagCmd) -> Result<i32> {
    let req = Request::TagImage {
        source: cmd.source,
        target: cmd.target,
    };
    match client.call(&req).await? {
        Response::Done => Ok(0),
        other => Err(unexpected("tag", &other)),
    }
}

/// Docker's JSON for `image inspect`.
fn inspect_json(i: &ImageInspect) -> serde_json::Value {
    let c = &i.config;
    let set = |v: &[String]| {
        (!v.is_empty()).then(|| {
            v.iter()
                .map(|k| (k.clone(), json!({})))
                .collect::<serde_json::Map<_, _>>()
        })
    };
    json!({
        "Id": i.id,
        "RepoTags": i.repo_tags,
        "RepoDigests": i.repo_digests,
        "Parent": "",
        "Comment": "",
        "Created": i.created,
        "DockerVersion": "",
        "Author": i.author,
        "Config": {
            "User": c.user,
            "ExposedPorts": set(&c.exposed_ports),
            "Env": c.env,
            "Cmd": c.cmd,
            "Entrypoint": c.entrypoint,
            "Volumes": set(&c.volumes),
            "WorkingDir": c.working_dir,
            "Labels": c.labels,
            "StopSignal": (!c.stop_signal.is_empty()).then_some(&c.stop_signal),
        },
        "Architecture": i.architecture,
        "Os": i.os,
        "Size": i.size,
        "RootFS": { "Type": "layers", "Layers": i.layers },
        "Node": i.node,
    })
}

/// `berth image inspect`.
pub async fn inspect(client: &Client, cmd: ImageInspectCmd) -> Result<i32> {
    let mut found = Vec::new();
    let mut code = 0;
    for image in cmd.images {
        match client.call(&Request::InspectImage { image }).await {
            Ok(Response::ImageInspect(i)) => found.push(inspect_json(&i)),
            Ok(other) => code = report_error(&unexpected("image inspect", &other)),
            Err(e) => code = report_error(&e),
        }
    }
    output::print_inspected(cmd.format.as_deref(), &found)?;
    Ok(code)
}

/// Rows of `history`: IMAGE CREATED CREATED BY SIZE COMMENT.
fn history_rows(
    entries: &[HistoryEntry],
    human: bool,
    no_trunc: bool,
    now: i64,
) -> Vec<Vec<String>> {
    entries
        .iter()
        .map(|h| {
            let id = if h.id.starts_with("sha256:") && !no_trunc {
                output::short_id(&h.id)
            } else {
                h.id.clone()
            };
            let created = match (human, h.created) {
                (_, 0) => "N/A".to_string(),
                (true, t) => output::ago(t, now),
                (false, t) => humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64),
                )
                .to_string(),
            };
            let by = h.created_by.replace('\t', " ");
            let by = if no_trunc {
                by
            } else {
                output::ellipsis(&by, 45)
            };
            let size = if human {
                output::human_size(h.size)
            } else {
                h.size.to_string()
            };
            vec![id, created, by, size, h.comment.clone()]
        })
        .collect()
}

/// `berth history`.
pub async fn history(client: &Client, cmd: HistoryCmd) -> Result<i32> {
    let entries = match client
        .call(&Request::ImageHistory {
            image: cmd.image.clone(),
        })
        .await?
    {
        Response::History(v) => v,
        other => return Err(unexpected("history", &other)),
    };
    let rows = history_rows(&entries, cmd.human, cmd.no_trunc, now_secs());
    let s = if cmd.quiet {
        rows.iter().map(|r| format!("{}\n", r[0])).collect()
    } else {
        match cmd.format.as_deref() {
            None | Some("table") => output::table(
                &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                &rows,
            ),
            Some("json") => rows
                .iter()
                .map(|r| {
                    let o = json!({
                        "ID": r[0], "CreatedSince": r[1], "CreatedBy": r[2],
                        "Size": r[3], "Comment": r[4],
                    });
                    format!("{o}\n")
                })
                .collect(),
            Some(f) => bail!("history --format {f:?} is not supported: use table or json"),
        }
    };
    output::print(&s);
    Ok(0)
}

/// `berth image prune`.
pub async fn prune(client: &Client, cmd: ImagePruneCmd) -> Result<i32> {
    if !cmd.force {
        let warning = if cmd.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).ok();
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let req = Request::ImagePrune {
        all: cmd.all,
        filters: parse::parse_filters(&cmd.filter)?,
    };
    match client.call(&req).await? {
        Response::ImagesDeleted {
            items,
            space_reclaimed,
        } => {
            output::print(&output::prune_report(
                "Deleted Images",
                &deleted_lines(&items, false),
                space_reclaimed,
            ));
            Ok(0)
        }
        other => Err(unexpected("image prune", &other)),
    }
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
            .peer()
            .await?
            .request_upload(&Request::ImportImage(req), &mut stdin)
            .await
    } else {
        let mut file = tokio::fs::File::open(&cmd.source)
            .await
            .with_context(|| format!("cannot open {}", cmd.source))?;
        req.size = file.metadata().await.ok().map(|m| m.len());
        client
            .peer()
            .await?
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

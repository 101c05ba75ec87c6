//! Encode/decode cost of the codec on the hot messages: a `Create` request carrying a full
//! `docker run` configuration, and a `ContainerInspect` answer.

use criterion::{criterion_group, criterion_main, Criterion};
use protocol::codec::{self, FrameCodec};
use protocol::messages::{
    ContainerConfig, ContainerInspect, ContainerState, ContainerStatus, HostConfig, InspectConfig,
    MountPoint, MountSpec, NetworkMode, NetworkSettings, PortBinding, PortProtocol, Request,
    Resources, Response, ResponseFrame, RestartPolicy,
};
use std::hint::black_box;

fn config() -> ContainerConfig {
    ContainerConfig {
        image: "registry.local:5000/team/web:1.27.3".into(),
        name: Some("web-frontend-1".into()),
        cmd: Some(vec!["nginx".into(), "-g".into(), "daemon off;".into()]),
        env: (0..12).map(|i| format!("VAR_{i}=value-{i}")).collect(),
        working_dir: Some("/srv".into()),
        user: Some("1000:1000".into()),
        hostname: Some("web".into()),
        labels: (0..8)
            .map(|i| (format!("com.example.label{i}"), format!("v{i}")))
            .collect(),
        mounts: vec![
            MountSpec::Named {
                name: "data".into(),
                target: "/data".into(),
                read_only: false,
            },
            MountSpec::Bind {
                source: "/srv/www".into(),
                target: "/usr/share/nginx/html".into(),
                read_only: true,
            },
            MountSpec::Tmpfs {
                target: "/run".into(),
                size: Some(64 << 20),
            },
        ],
        ports: vec![PortBinding {
            host_ip: None,
            host_port: Some(8080),
            container_port: 80,
            protocol: PortProtocol::Tcp,
        }],
        restart_policy: RestartPolicy::UnlessStopped,
        resources: Resources {
            memory_bytes: Some(512 << 20),
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(256),
        },
        cap_drop: vec!["NET_RAW".into()],
        network: NetworkMode::Bridge,
        stop_timeout: Some(10),
        ..Default::default()
    }
}

fn inspect() -> ContainerInspect {
    let cfg = config();
    ContainerInspect {
        id: "f".repeat(64),
        name: "/web-frontend-1".into(),
        created: "2024-02-29T12:34:56.500000000Z".into(),
        path: "nginx".into(),
        args: vec!["-g".into(), "daemon off;".into()],
        state: ContainerState {
            status: ContainerStatus::Running,
            running: true,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 12345,
            exit_code: 0,
            error: String::new(),
            started_at: "2024-02-29T12:34:57.000000000Z".into(),
            finished_at: protocol::messages::ZERO_TIME.into(),
        },
        image: format!("sha256:{}", "a".repeat(64)),
        restart_count: 0,
        node: "node-1".into(),
        config: InspectConfig::from_config(&cfg),
        host_config: HostConfig::from_config(&cfg),
        mounts: vec![MountPoint {
            kind: "volume".into(),
            name: "data".into(),
            source: "/var/lib/berth/volumes/data/_data".into(),
            destination: "/data".into(),
            driver: "local".into(),
            mode: "rw".into(),
            rw: true,
            propagation: String::new(),
        }],
        network_settings: NetworkSettings::default(),
    }
}

fn bench(c: &mut Criterion) {
    let create = Request::Create(Box::new(config()));
    let create_bytes = codec::encode(&create).expect("encode");
    c.bench_function("encode create request", |b| {
        b.iter(|| codec::encode(black_box(&create)).expect("encode"))
    });
    c.bench_function("decode create request", |b| {
        b.iter(|| codec::decode::<Request>(black_box(&create_bytes)).expect("decode"))
    });

    let answer = ResponseFrame::Item(Response::Inspect(Box::new(inspect())));
    let answer_bytes = codec::encode(&answer).expect("encode");
    c.bench_function("encode inspect answer", |b| {
        b.iter(|| codec::encode(black_box(&answer)).expect("encode"))
    });
    c.bench_function("decode inspect answer", |b| {
        b.iter(|| codec::decode::<ResponseFrame>(black_box(&answer_bytes)).expect("decode"))
    });

    let framer = FrameCodec::default();
    c.bench_function("frame encode create request", |b| {
        b.iter(|| framer.encode_frame(black_box(&create)).expect("frame"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
